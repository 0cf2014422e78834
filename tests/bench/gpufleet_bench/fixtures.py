"""The benchmark's moving parts on loopback: simulator processes, NGINX processes, and configs rendered by Ansible."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import string
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[3]
SIMULATOR_SRC = REPO / "roles" / "model_server" / "files" / "simulator" / "src"
RENDER_PLAYBOOK = REPO / "tests" / "bench" / "render_lb.yml"
GATEWAY_JS_DIR = REPO / "roles" / "nginx_lb" / "files"
# What a simulator serves unless told otherwise (the simulator's own default), so the gateway routes to it.
SIMULATOR_MODEL = "simulated-llm"
NAIVE_TEMPLATE = Path(__file__).with_name("naive_nginx.conf")
LOOPBACK = "127.0.0.1"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


def nginx_binary() -> str:
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if not found:
        raise RuntimeError("nginx is not installed: `make host-packages` installs it (Debian: apt-get install nginx)")
    return found


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _wait_for_port(port: int, process: subprocess.Popen, log: Path, what: str, host: str = LOOPBACK) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}:\n{log.read_text()[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {host}:{port} within {START_TIMEOUT_S}s")


def _stop(process: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT_S)


class Simulator:
    """One gpufleet-simulator process on host:port (127.0.0.1 unless told), logging every request id it accepts.

    prefix runs it elsewhere, e.g. ["ip", "netns", "exec", name] in the delay line's server namespace.
    """

    def __init__(self, port: int, workdir: Path, settings: Mapping[str, object], host: str = LOOPBACK,
                 prefix: Sequence[str] = ()) -> None:
        self.port, self.host = port, host
        self.instance_id = f"sim-{port}"
        self.request_log = workdir / f"requests-{port}.log"
        self.log = workdir / f"simulator-{port}.log"
        self.request_log.unlink(missing_ok=True)
        command = [*prefix, sys.executable, "-m", "gpufleet_simulator", "--host", host, "--port", str(port),
                   "--no-access-log", "--log-level", "warning", "--instance-id", self.instance_id,
                   "--request-log", str(self.request_log)]
        for name, value in settings.items():
            command += ["--" + name.replace("_", "-"), str(value)]
        env = {key: value for key, value in os.environ.items() if not key.startswith("GPUFLEET_SIM_")}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SIMULATOR_SRC), env.get("PYTHONPATH")]))
        with self.log.open("w") as out:
            self.process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def wait(self) -> None:
        _wait_for_port(self.port, self.process, self.log, f"simulator {self.instance_id}", self.host)

    def kill(self) -> None:
        """SIGKILL: the way a crashed GPU process goes, with no chance to finish anything."""
        _stop(self.process, signal.SIGKILL)

    def stop(self) -> None:
        _stop(self.process)

    def accepted_ids(self) -> list[str]:
        if not self.request_log.exists():
            return []
        return [line.split(" ", 1)[1] for line in self.request_log.read_text().splitlines() if " " in line]


@contextlib.contextmanager
def simulators(ports: Sequence[int], workdir: Path, settings: Mapping[str, object], host: str = LOOPBACK,
               prefix: Sequence[str] = ()) -> Iterator[list[Simulator]]:
    started: list[Simulator] = []
    try:
        for port in ports:
            # another namespace's ports cannot be probed from here; a clash there fails the wait instead
            if not prefix and not port_is_free(port, host):
                raise RuntimeError(f"port {host}:{port} is in use; pick another --port-base")
            started.append(Simulator(port, workdir, settings, host, prefix))
        for simulator in started:
            simulator.wait()
        yield started
    finally:
        for simulator in started:
            simulator.stop()


class Nginx:
    """NGINX in the foreground with its own prefix; the config's pid and logs point into workdir."""

    def __init__(self, conf: Path, port: int, workdir: Path) -> None:
        self.conf, self.port, self.prefix = conf, port, workdir
        self.log = workdir / f"nginx-{port}.out"
        if not port_is_free(port):
            raise RuntimeError(f"port {LOOPBACK}:{port} is in use; pick another --port-base")
        with self.log.open("w") as out:
            self.process = subprocess.Popen(
                [nginx_binary(), "-p", str(workdir), "-e", str(workdir / f"error-{port}.log"), "-c", str(conf),
                 "-g", "daemon off;"], stdout=out, stderr=subprocess.STDOUT)
        _wait_for_port(port, self.process, self.log, f"nginx {conf.name}")

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def stop(self) -> None:
        _stop(self.process, signal.SIGQUIT)  # graceful: workers finish and close their connections


@contextlib.contextmanager
def nginx(conf: Path, port: int, workdir: Path) -> Iterator[Nginx]:
    server = Nginx(conf, port, workdir)
    try:
        yield server
    finally:
        server.stop()


# The naive config plus the compression that LLM proxy guides add for event streams, e.g. the nginx example of
# xqdoo00o/chatgpt-web's README ("gzip on; gzip_min_length 1k; gzip_types text/event-stream;", to save traffic on
# repetitive text), there beside proxy_buffering off, which the naive config leaves on. NGINX's gzip filter emits
# what it has compressed only at a buffer marked flush (ngx_http_gzip_filter_add_data); unbuffered proxying marks
# every buffer it passes on, buffered proxying none, so buffering on + gzip holds an event stream until zlib's own
# block fills or the response ends: on NGINX 1.22 a whole 128-token answer (docs/benchmarks.md, section 1).
# gzip_min_length is left out: it reads Content-Length, which an event stream has none of.
GZIP_EVENT_STREAMS = ("gzip on;", "gzip_types text/event-stream;")


def naive_config(path: Path, workdir: Path, port: int, servers: Sequence[int], host: str = LOOPBACK, *,
                 extra: Sequence[str] = ()) -> Path:
    """The common blog setup: plain upstream, proxy_pass with Host and X-Forwarded headers, everything else default.

    Only the pid, logs and temp paths point into workdir (and the access log names the upstream of each request,
    which the failover comparison needs); none of that changes how requests are proxied. extra: directives added
    to the http block (GZIP_EVENT_STREAMS for the naive-gzip arm).
    """
    # ${name} are ours; NGINX's own $variables pass through untouched
    text = string.Template(NAIVE_TEMPLATE.read_text()).safe_substitute(
        workdir=workdir, port=port, servers="\n".join(f"        server {host}:{server};" for server in servers),
        extra="".join(f"    {directive}\n" for directive in extra))
    if "${" in text:
        raise RuntimeError(f"{NAIVE_TEMPLATE} has a placeholder this code does not fill")
    (workdir / f"temp-{port}").mkdir(exist_ok=True)
    path.write_text(text)
    return path


def loopback_lb_settings(workdir: Path, name: str, port: int, **extra) -> dict:
    """The nginx_lb settings that put load balancer ``name`` on loopback at ``port`` (its status page at port + 9)
    with its pid file and logs in workdir; ``extra`` adds or overrides nginx_lb_* settings."""
    return {"nginx_lb_listen_address": LOOPBACK, "nginx_lb_listen_port": port, "nginx_lb_status_port": port + 9,
            "nginx_lb_pid_file": str(workdir / f"{name}.pid"), "nginx_lb_error_log": str(workdir / f"error-{port}.log"),
            "nginx_lb_access_log": str(workdir / f"access-{port}.log"), **extra}


def render_lb_configs(workdir: Path, gpu_nodes: Mapping[str, Mapping], load_balancers: Mapping[str, Mapping]) -> dict:
    """Render the nginx_lb role's nginx.conf once per load balancer with ansible-playbook; returns name -> path.

    gpu_nodes: name -> host vars (gpufleet_region, gpu_count, gpufleet_address, model_server_base_port, ...).
    load_balancers: name -> {"region": ..., "settings": {nginx_lb_*: ...}}; settings win over the role's defaults.
    """
    lb_hosts = {}
    confs = {}
    for name, spec in load_balancers.items():
        settings_file = workdir / f"{name}.settings.yml"
        # The plain role config unless a comparison asks for the gateway's TLS and keys; the gateway's
        # JavaScript from this checkout, its usage log beside the others.
        settings = {"nginx_lb_tls": False, "nginx_lb_auth": False, "nginx_lb_js_dir": str(GATEWAY_JS_DIR),
                    "nginx_lb_usage_log": str(workdir / f"usage-{name}.log"), **spec["settings"]}
        settings_file.write_text(yaml.safe_dump(settings))
        confs[name] = workdir / f"{name}.conf"
        lb_hosts[name] = {"gpufleet_region": spec["region"], "bench_lb_settings_file": str(settings_file),
                          "bench_lb_conf": str(confs[name]), "bench_lb_prefix": str(workdir)}
    common = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
              "bench_nginx": nginx_binary()}
    inventory = {"all": {"vars": common, "children": {
        "gpu_nodes": {"hosts": {name: {"gpufleet_model": SIMULATOR_MODEL, **hostvars}
                                for name, hostvars in gpu_nodes.items()}},
        "load_balancers": {"hosts": lb_hosts}}}}
    inventory_file = workdir / "bench-inventory.yml"
    inventory_file.write_text(yaml.safe_dump(inventory))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(REPO / ".collections"),
               ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
               ANSIBLE_CACHE_PLUGIN="memory", ANSIBLE_STDOUT_CALLBACK="default", ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCAL_TEMP=str(workdir / "ansible-tmp"))
    playbook = Path(sys.executable).with_name("ansible-playbook")
    result = subprocess.run([str(playbook), "-i", str(inventory_file), str(RENDER_PLAYBOOK)], env=env,
                            capture_output=True, text=True, timeout=300, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"rendering the nginx_lb configs failed:\n{result.stdout[-4000:]}\n{result.stderr[-2000:]}")
    return confs


def tls_files(directory: Path, address: str = LOOPBACK) -> Path:
    """A throwaway CA and a certificate for ``address`` signed by it, as the nginx_lb role lays them out
    (gpufleet.crt, gpufleet.key in nginx_lb_tls_dir); returns the CA's file for the client to trust."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gpufleet bench CA")])
    day = datetime.timedelta(days=1)
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(1).not_valid_before(now - day).not_valid_after(now + day)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .sign(ca_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, address)]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(2)
            .not_valid_before(now - day).not_valid_after(now + day)
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(address))]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "gpufleet.crt").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (directory / "gpufleet.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    (directory / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    return directory / "ca.crt"
