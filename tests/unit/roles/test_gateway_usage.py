"""gateway_usage: the role's own templates, rendered as the role renders them, run through the real tools:
systemd-analyze rates the unit's sandbox, and Debian's mtail (`make mtail`) turns a usage log into the metrics."""

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[3]
ROLE = REPO / "roles" / "gateway_usage"
PLAYBOOK = Path(__file__).with_name("gateway_usage_render.yml")
DEFAULTS = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
MTAIL = REPO / ".cache" / "mtail" / "usr" / "bin" / "mtail"
WAIT_S = 15

# The example lines of the usage log's format as the gateway design gives them (helper brief gateway.md, issue 10).
DESIGN_EXAMPLE_LINES = [
    "key=team-a model=simulated-llm status=200 prompt_tokens=12 completion_tokens=64 rt=1.032",
    "key=- model=- status=401 prompt_tokens=- completion_tokens=- rt=0.000",
    "key=team-b model=simulated-llm-small status=429 prompt_tokens=- completion_tokens=- rt=0.000",
    "key=team-a model=no-such-model status=404 prompt_tokens=- completion_tokens=- rt=0.001",
    "key=team-a model=simulated-llm status=502 prompt_tokens=- completion_tokens=- rt=5.002",
]
# More of the same format: tokens to sum across lines, a second 429, a 503, a prompt without a completion count
# (a stream cut before its usage chunk), and a line of another format.
MORE_LINES = [
    "key=team-a model=simulated-llm status=200 prompt_tokens=30 completion_tokens=16 rt=0.250",
    "key=team-b model=simulated-llm-small status=200 prompt_tokens=5 completion_tokens=7 rt=12.5",
    "key=team-b model=simulated-llm-small status=429 prompt_tokens=- completion_tokens=- rt=0.000",
    "key=team-a model=simulated-llm status=503 prompt_tokens=- completion_tokens=- rt=30.001",
    "key=team-a model=simulated-llm status=200 prompt_tokens=100 completion_tokens=- rt=2.0",
    "this is not a usage line",
]
# The format with how a stream ended (nginx_lb logs stream= since issue 11): streams whole and cut, an answer
# that is no stream, and a malformed end marker (another format: unparsed).
STREAM_LINES = [
    "key=team-a model=simulated-llm status=200 prompt_tokens=- completion_tokens=- stream=done rt=0.170",
    "key=team-a model=simulated-llm status=200 prompt_tokens=- completion_tokens=- stream=done rt=0.210",
    "key=team-a model=simulated-llm status=200 prompt_tokens=- completion_tokens=- stream=cut rt=0.248",
    "key=team-b model=simulated-llm-small status=200 prompt_tokens=9 completion_tokens=4 stream=cut rt=0.081",
    "key=team-b model=simulated-llm-small status=200 prompt_tokens=9 completion_tokens=4 stream=- rt=0.050",
    "key=team-b model=simulated-llm-small status=200 prompt_tokens=- completion_tokens=- stream=open rt=0.050",
]
HOSTS = {
    "lb": {},
    "bad_port": {"gateway_usage_port": 70000},
    "bad_buckets": {"gateway_usage_request_seconds_buckets": [1, 0.5]},
}


@pytest.fixture(scope="module")
def render(tmp_path_factory):
    """(per-host directory of rendered files, ansible-playbook output)."""
    work = tmp_path_factory.mktemp("gateway_usage")
    inventory = {"all": {"hosts": {name: dict(vars_, ansible_connection="local",
                                              ansible_python_interpreter=sys.executable)
                                   for name, vars_ in HOSTS.items()}}}
    (work / "hosts.yml").write_text(yaml.safe_dump(inventory))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(REPO / ".collections"),
               ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_CACHE_PLUGIN="memory")
    result = subprocess.run(
        [str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(work / "hosts.yml"), str(PLAYBOOK),
         "-e", f"render_dir={work / 'out'}"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    return work / "out", result.stdout + result.stderr


@pytest.fixture(scope="module")
def rendered(render):
    out, output = render
    assert (out / "lb" / "gateway_usage.mtail").is_file(), output[-4000:]
    return out / "lb"


@pytest.fixture(scope="session")
def mtail():
    if not MTAIL.is_file():
        pytest.fail("mtail not found: run `make mtail` (it unpacks Debian's mtail package into .cache/)")
    return str(MTAIL)


def unit_path(directory):
    return directory / f"{DEFAULTS['gateway_usage_service']}.service"


def test_preflight_names_host_and_variable(render):
    out, output = render
    assert "bad_port: gateway_usage_port must be a port (1-65535, got 70000)" in output
    assert "bad_buckets: gateway_usage_request_seconds_buckets must be a list of distinct positive numbers" in output
    assert not (out / "bad_port").exists() and not (out / "bad_buckets").exists()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze (systemd)")
def test_the_unit_s_sandbox_rates_at_most_3(rendered):
    result = subprocess.run(["systemd-analyze", "security", "--offline=true", str(unit_path(rendered))],
                            capture_output=True, text=True, timeout=60, check=False)
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= 3.0, result.stdout
    # An unknown or misspelt setting is ignored by systemd (and not rated): there must be none.
    assert "Unknown key" not in result.stderr and "Unknown section" not in result.stderr, result.stderr


def test_the_unit_runs_mtail_unprivileged_over_the_usage_log(rendered):
    unit = unit_path(rendered).read_text()
    assert f"User={DEFAULTS['gateway_usage_user']}\n" in unit and DEFAULTS["gateway_usage_user"] != "root"
    assert f"SupplementaryGroups={DEFAULTS['gateway_usage_log_group']}\n" in unit
    command = exec_start(unit)
    assert command[0] == "/usr/bin/mtail"
    assert flag(command, "--logs") == "/var/log/nginx/gateway.log"
    assert flag(command, "--port") == str(DEFAULTS["gateway_usage_port"]) == "3903"
    assert flag(command, "--progs") == f"{DEFAULTS['gateway_usage_program_dir']}/gateway_usage.mtail"
    assert "--emit_prog_label=false" in command


def exec_start(unit):
    match = re.search(r"^ExecStart=((?:.*\\\n)*.*)$", unit, re.MULTILINE)
    return shlex.split(match.group(1).replace("\\\n", " "))


def flag(command, name):
    return command[command.index(name) + 1]


def validate_command(dest_suffix):
    """The `validate:` of the role's template task for a destination, as Ansible runs it (shlex-split)."""
    tasks = yaml.safe_load((ROLE / "tasks" / "configure.yml").read_text())
    (task,) = [t for t in tasks if str(t.get("gpufleet.llm.template", {}).get("dest", "")).endswith(dest_suffix)]
    return task["gpufleet.llm.template"]["validate"]


@pytest.mark.parametrize("broken", [False, True], ids=["program", "broken program"])
def test_the_role_s_validate_compiles_the_program(rendered, mtail, tmp_path, broken):
    """Run the role's own validate command; it must reject a program mtail cannot compile. (A bare
    `mtail --compile_only --progs %s` would pass anything: Ansible's temporary file has no .mtail suffix,
    and mtail skips such files and exits 0.)"""
    source = tmp_path / "source"
    program = (rendered / "gateway_usage.mtail").read_text()
    source.write_text(program.replace("gpufleet_gateway_requests_total[$key]", "undeclared_metric[$key]")
                      if broken else program)
    command = validate_command("gateway_usage.mtail").replace("/usr/bin/mtail", mtail).replace("%s", str(source))
    result = subprocess.run(shlex.split(command), capture_output=True, text=True, timeout=60, check=False)
    assert (result.returncode != 0) == broken, result.stdout + result.stderr
    if broken:
        assert "undeclared_metric" in result.stderr


class Mtail:
    """mtail over one log on 127.0.0.1 and an ephemeral port, run as the unit runs it (its flags but these)."""

    def __init__(self, binary, program, log, stderr_path):
        command = exec_start(unit_path(program.parent).read_text())
        command[0] = binary
        for name, value in (("--progs", str(program)), ("--logs", str(log)), ("--port", "0")):
            command[command.index(name) + 1] = value
        command[1:1] = ["--address", "127.0.0.1"]
        self.stderr_path = stderr_path
        with open(stderr_path, "wb") as stderr:
            self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
        self.url = f"http://127.0.0.1:{self._port()}/metrics"

    def _port(self):
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            if match := re.search(r"Listening on 127\.0\.0\.1:(\d+)", self.stderr_path.read_text()):
                return int(match.group(1))
            assert self.process.poll() is None, self.stderr_path.read_text()
            time.sleep(0.1)
        raise AssertionError(f"mtail did not listen within {WAIT_S} s:\n{self.stderr_path.read_text()}")

    def scrape(self):
        return httpx.get(self.url, timeout=5)

    def samples(self):
        response = self.scrape()
        assert response.status_code == 200, response.text[:2000]
        return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
                for family in text_string_to_metric_families(response.text)
                if family.name.startswith("gpufleet_gateway_") for sample in family.samples}

    def wait_for_requests(self, count):
        """Samples once mtail has counted `count` usage lines (it polls the log every 250 ms)."""
        deadline, samples = time.monotonic() + WAIT_S, {}
        while time.monotonic() < deadline:
            samples = self.samples()
            if sum(v for (name, _), v in samples.items() if name == "gpufleet_gateway_requests_total") >= count:
                return samples
            time.sleep(0.2)
        raise AssertionError(f"mtail counted fewer than {count} requests within {WAIT_S} s: {samples}")

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


@pytest.fixture
def server(rendered, mtail, tmp_path):
    """mtail over an empty log, on a copy of the rendered program (which a test may change)."""
    programs = tmp_path / "programs"
    programs.mkdir()
    for name in ("gateway_usage.mtail", unit_path(rendered).name):
        shutil.copy(rendered / name, programs)
    log = tmp_path / "gateway.log"
    # mtail reads a log it finds at start from its end, as after a restart; lines are appended once it runs.
    log.write_text("")
    running = Mtail(mtail, programs / "gateway_usage.mtail", log, tmp_path / "mtail.stderr")
    running.log, running.program = log, programs / "gateway_usage.mtail"
    yield running
    running.stop()


def append(log, lines):
    with open(log, "a") as handle:
        handle.write("".join(f"{line}\n" for line in lines))


def requests(samples):
    return {dict(labels)["key"] + " " + dict(labels)["model"] + " " + dict(labels)["status"]: value
            for (name, labels), value in samples.items() if name == "gpufleet_gateway_requests_total"}


def per_key_model(samples, metric):
    return {dict(labels)["key"] + " " + dict(labels)["model"]: value
            for (name, labels), value in samples.items() if name == metric}


def test_real_mtail_counts_requests_and_sums_tokens_per_key_and_model(server):
    append(server.log, DESIGN_EXAMPLE_LINES)
    first = server.wait_for_requests(5)
    assert requests(first) == {"team-a simulated-llm 200": 1, "- - 401": 1, "team-b simulated-llm-small 429": 1,
                               "team-a no-such-model 404": 1, "team-a simulated-llm 502": 1}
    # "-" tokens add nothing: only the one answer with a usage has token series.
    assert per_key_model(first, "gpufleet_gateway_prompt_tokens_total") == {"team-a simulated-llm": 12}
    assert per_key_model(first, "gpufleet_gateway_completion_tokens_total") == {"team-a simulated-llm": 64}

    append(server.log, MORE_LINES)
    final = server.wait_for_requests(10)
    assert requests(final) == {"team-a simulated-llm 200": 3, "- - 401": 1, "team-b simulated-llm-small 429": 2,
                               "team-a no-such-model 404": 1, "team-a simulated-llm 502": 1,
                               "team-a simulated-llm 503": 1, "team-b simulated-llm-small 200": 1}
    assert per_key_model(final, "gpufleet_gateway_prompt_tokens_total") == {
        "team-a simulated-llm": 12 + 30 + 100, "team-b simulated-llm-small": 5}
    assert per_key_model(final, "gpufleet_gateway_completion_tokens_total") == {
        "team-a simulated-llm": 64 + 16, "team-b simulated-llm-small": 7}
    assert final[("gpufleet_gateway_unparsed_lines_total", ())] == 1


def test_real_mtail_counts_streams_by_how_they_ended(server):
    append(server.log, STREAM_LINES)
    samples = server.wait_for_requests(5)
    streams = {" ".join(dict(labels)[name] for name in ("key", "model", "end")): value
               for (metric, labels), value in samples.items() if metric == "gpufleet_gateway_streams_total"}
    assert streams == {"team-a simulated-llm done": 2, "team-a simulated-llm cut": 1,
                       "team-b simulated-llm-small cut": 1}
    # Every line of the format is a request, stream or not; the unknown end marker is no line of the format.
    assert requests(samples) == {"team-a simulated-llm 200": 3, "team-b simulated-llm-small 200": 2}
    assert per_key_model(samples, "gpufleet_gateway_prompt_tokens_total") == {"team-b simulated-llm-small": 18}
    assert samples[("gpufleet_gateway_unparsed_lines_total", ())] == 1


def test_real_mtail_request_time_histogram_per_key(server):
    lines = DESIGN_EXAMPLE_LINES + MORE_LINES
    append(server.log, lines)
    samples = server.wait_for_requests(10)
    times = {}
    for line in lines:
        if fields := dict(field.split("=", 1) for field in line.split() if "=" in field):
            times.setdefault(fields["key"], []).append(float(fields["rt"]))
    bounds = [*map(float, DEFAULTS["gateway_usage_request_seconds_buckets"]), float("inf")]
    for key, observed in times.items():
        labels = (("key", key),)
        assert samples[("gpufleet_gateway_request_seconds_count", labels)] == len(observed)
        assert samples[("gpufleet_gateway_request_seconds_sum", labels)] == pytest.approx(sum(observed))
        for bound in bounds:
            le = "+Inf" if bound == float("inf") else f"{bound:g}"
            # Requests answered in 0.000 s (401, 429) must land in the first bucket, not in none.
            assert samples[("gpufleet_gateway_request_seconds_bucket", (("key", key), ("le", le)))] == sum(
                value <= bound for value in observed), (key, le)


def test_real_mtail_follows_the_log_across_rotation(server):
    append(server.log, DESIGN_EXAMPLE_LINES[:1])
    server.wait_for_requests(1)
    # logrotate without copytruncate, as Debian's nginx rotates /var/log/nginx/*.log: rename, then a new file.
    server.log.rename(server.log.with_name("gateway.log.1"))
    append(server.log, DESIGN_EXAMPLE_LINES[:1])
    samples = server.wait_for_requests(2)
    assert requests(samples) == {"team-a simulated-llm 200": 2}


def test_sighup_reload_of_a_changed_program_breaks_metrics(server):
    """Why the role restarts mtail on a changed program instead of reloading it: mtail 3.0.0~rc50 keeps the
    old program's metrics beside the reloaded one's when declarations moved, and /metrics answers 500. If a
    newer mtail fails this test, the handler may reload instead."""
    append(server.log, DESIGN_EXAMPLE_LINES)
    server.wait_for_requests(5)
    server.program.write_text("# one more line moves every declaration\n" + server.program.read_text())
    server.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + WAIT_S
    while server.scrape().status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert server.process.poll() is None, "SIGHUP stopped mtail"
    response = server.scrape()
    assert response.status_code == 500 and "was collected before with the same name" in response.text
