"""The five loopback comparisons of the benchmark (the sixth, the control plane, is control_plane.py)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import ssl
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

from . import arrivals, fixtures, loadgen, peer, stats, workload
from .client import Record
from .outcome import Check, Outcome, interleaved
from .plots import plot_comparison, plot_sweep

MODEL = "simulated-llm"
# The GPU profile of the simulator (profiles.py) that the affinity comparison runs on unless --profile names another.
DEFAULT_PROFILE = "gpt-oss-20b-h100-pcie"
TIMEOUT_S = 60.0
PEER_TIMEOUT_S = 300.0


class Bench:
    """Ports, rendered configs and run lengths shared by the comparisons."""

    def __init__(self, workdir: Path, port_base: int, *, reps: int, quick: bool, seed: int, img: Path,
                 upstream_host: str = fixtures.LOOPBACK, simulator_prefix: Sequence[str] = (),
                 peer: bool = False, profile: str = DEFAULT_PROFILE) -> None:
        self.workdir, self.reps, self.quick, self.seed, self.img = workdir, reps, quick, seed, img
        self.peer = peer  # also run the peer client (peer.py) in the streaming and mixed-length comparisons
        self.profile = profile  # the simulator's GPU profile where a comparison models the engine's batching
        # where the simulators listen and how they are started: loopback here, or across the delay line
        self.upstream_host, self.simulator_prefix = upstream_host, tuple(simulator_prefix)
        base = port_base
        self.sim_one = base + 101
        self.sim_three = [base + 201, base + 202, base + 203]
        self.ports = {"lb-one": base + 100, "naive-one": base + 110, "naive-gzip-one": base + 120,
                      "lb-three": base + 200, "naive-three": base + 210, "lb-affinity": base + 300,
                      "lb-round-robin": base + 400, "lb-gateway": base + 500}
        # The gateway arm's TLS files (a throwaway CA) and API key.
        self.gateway_ca = fixtures.tls_files(workdir / "tls")
        self.gateway_key = secrets.token_hex(32)
        self.confs: dict[str, Path] = {}

    def render(self) -> None:
        """Every role config in one ansible-playbook run; the naive ones (and naive-gzip) from naive_nginx.conf."""
        gpu_nodes = {
            "bench-gpu-one": {"gpufleet_region": "bench-one", "gpu_count": 1, "model_server_base_port": self.sim_one},
            "bench-gpu-three": {"gpufleet_region": "bench-three", "gpu_count": 3,
                                "model_server_base_port": self.sim_three[0]},
            # A second model in bench-one, so that the gateway routes among pools (no request asks for it).
            "bench-gpu-other": {"gpufleet_region": "bench-one", "gpu_count": 1, "gpufleet_model": "other-model",
                                "model_server_base_port": self.sim_one + 50},
        }
        for hostvars in gpu_nodes.values():
            hostvars.update(gpu_model="simulated", gpufleet_address=self.upstream_host)
        lbs = {"lb-one": ("bench-one", {}), "lb-three": ("bench-three", {}),
               "lb-affinity": ("bench-three", {"nginx_lb_session_affinity": True}),
               "lb-round-robin": ("bench-three", {"nginx_lb_balancing": "round_robin"}),
               "lb-gateway": ("bench-one", {"nginx_lb_tls": True, "nginx_lb_tls_dir": str(self.gateway_ca.parent),
                                            "nginx_lb_plain_http": "off", "nginx_lb_auth": True,
                                            "nginx_lb_api_keys": [{"name": "bench", "key": self.gateway_key,
                                                                   "rate": 100000, "burst": 100000,
                                                                   "concurrency": 10000}]})}
        specs = {}
        for name, (region, extra) in lbs.items():
            # The instance header passed on: failover and affinity attribute each request to the simulator that
            # served it.
            settings = fixtures.loopback_lb_settings(self.workdir, name, self.ports[name], nginx_lb_debug_headers=True,
                                                     **extra)
            specs[name] = {"region": region, "settings": settings}
        self.confs = fixtures.render_lb_configs(self.workdir, gpu_nodes, specs)
        self.confs["naive-one"] = fixtures.naive_config(self.workdir / "naive-one.conf", self.workdir,
                                                        self.ports["naive-one"], [self.sim_one], self.upstream_host)
        self.confs["naive-gzip-one"] = fixtures.naive_config(
            self.workdir / "naive-gzip-one.conf", self.workdir, self.ports["naive-gzip-one"], [self.sim_one],
            self.upstream_host, extra=fixtures.GZIP_EVENT_STREAMS)
        self.confs["naive-three"] = fixtures.naive_config(self.workdir / "naive-three.conf", self.workdir,
                                                          self.ports["naive-three"], self.sim_three,
                                                          self.upstream_host)

    @contextlib.contextmanager
    def nginx(self, name: str) -> Iterator[fixtures.Nginx]:
        access_log = self.workdir / f"access-{self.ports[name]}.log"
        access_log.unlink(missing_ok=True)
        with fixtures.nginx(self.confs[name], self.ports[name], self.workdir) as server:
            yield server

    def access_log(self, name: str) -> dict[str, str]:
        """request id -> $upstream_addr (every server tried) from the access log of that config."""
        pattern = re.compile(r"upstream=(?P<upstream>.*?) us=.*rid=(?P<rid>\S+)")
        path = self.workdir / f"access-{self.ports[name]}.log"
        found = {}
        for line in path.read_text().splitlines() if path.exists() else []:
            match = pattern.search(line)
            if match:
                found[match["rid"]] = match["upstream"]
        return found

    def simulators(self, ports: list[int], **settings: object):
        return fixtures.simulators(ports, self.workdir, settings, self.upstream_host, self.simulator_prefix)

    def plot_path(self, key: str) -> Path:
        return self.img / f"bench-{key}.png"


def _target(url: str, stream: bool = True, api: str = "completions") -> loadgen.Target:
    return loadgen.Target(url, api=api, model=MODEL, stream=stream, timeout_s=TIMEOUT_S)


def _run(target: loadgen.Target, requests, times, *, concurrency=None, duration=None,
         prefix="req", warm=0) -> loadgen.RunResult:
    return asyncio.run(loadgen.run_requests(target, requests, times, max_concurrency=concurrency,
                                            max_duration_s=duration, id_prefix=prefix, warm_connections=warm))


def _metrics(records: list[Record]) -> dict:
    summary = stats.summarize(records)
    flat = {"requests": summary["requests"], "failed": summary["failed"], "req_s": summary["request_throughput"],
            "tok_s": summary["output_throughput"]}
    for name in ("ttft", "itl", "e2e", "tpot"):
        for q in ("p50", "p90", "p99"):
            flat[f"{name}_{q}"] = summary[f"{name}_ms"][q]
    return flat


def _with_client(metrics: dict, result: loadgen.RunResult) -> dict:
    """The load generator's own cost beside what it measured, to show it was not the bottleneck."""
    return dict(metrics, client_cpu_us=result.cpu_per_request_us, client_core_share=result.core_share)


# Above this share of one core the client, not the arm under test, may set the pace (one asyncio loop, one core).
CLIENT_BUSY_SHARE = 0.9


def _client_note(outcome: Outcome) -> None:
    shares = [rep["client_core_share"] for reps in outcome.arms.values() for rep in reps
              if rep and "client_core_share" in rep]
    if not shares:
        return
    busiest = max(shares)
    verdict = ("**it may have set the pace: these figures bound the arms from below**" if busiest > CLIENT_BUSY_SHARE
               else "so one process was enough and the client was not the bottleneck")
    outcome.notes.append(f"The load generator (one process, one asyncio loop) used at most {busiest:.2f} of one core "
                         f"in any run of this comparison; {verdict}.")


CLIENT_ROWS = [("client CPU per request (µs)", "client_cpu_us"), ("client's share of one core", "client_core_share")]


def _per_arm(arms, key):
    """Each arm's values of ``key``, one per repetition, for a plot."""
    return {arm: [rep[key] for rep in reps] for arm, reps in arms.items()}


def _ratio(outcome_arms: dict, num: str, den: str, key: str) -> list[float]:
    return [a[key] / b[key] if b[key] else float("nan") for a, b in zip(outcome_arms[num], outcome_arms[den],
                                                                        strict=True)]


def _delta(outcome_arms: dict, arm: str, base: str, key: str) -> list[float]:
    return [a[key] - b[key] for a, b in zip(outcome_arms[arm], outcome_arms[base], strict=True)]


def _peer_runs(bench: Bench, key: str, urls: dict[str, str], load: peer.Load) -> dict[str, dict]:
    """The peer client once against each arm's URL, when the bench runs it."""
    if not bench.peer:
        return {}
    return {arm: peer.run(url, load, bench.workdir, f"{key}-{arm}", model=MODEL, timeout_s=PEER_TIMEOUT_S)
            for arm, url in urls.items()}


def _beside_own(outcome: Outcome, figures: dict[str, dict], load: str) -> None:
    """The peer client's figures and their ratios to the project's, as rows of the outcome's table and a note."""
    if figures:
        outcome.rows += peer.beside_own(outcome.arms, figures)
        outcome.notes.append(peer.note(list(figures), load))


def _collect(arm_names, reps) -> tuple[dict[str, list], dict[str, list]]:
    return {arm: [None] * reps for arm in arm_names}, {arm: [] for arm in arm_names}


def streaming(bench: Bench) -> Outcome:
    """1. One simulator, 64 concurrent streams of 128 tokens: direct against through the role's LB, the naive config
    (buffering on) and naive-gzip (buffering on and gzip on event streams), which the LB's bounds must catch."""
    streams, waves = 64, (1 if bench.quick else 3)
    arms, ttfts = _collect(["direct", "lb", "naive", "naive-gzip"], bench.reps)
    itls: dict[str, list] = {arm: [] for arm in arms}
    with bench.simulators([bench.sim_one], ttft_ms=50, itl_ms=20, output_tokens=128, prefill_ms_per_token=0), \
            bench.nginx("lb-one") as lb, bench.nginx("naive-one") as naive, \
            bench.nginx("naive-gzip-one") as naive_gzip:
        urls = {"direct": f"http://{bench.upstream_host}:{bench.sim_one}", "lb": lb.url, "naive": naive.url,
                "naive-gzip": naive_gzip.url}
        for rep, arm in interleaved(list(arms), bench.reps):
            requests = workload.requests(streams * waves, [(128, 1.0)], 32, bench.seed + rep)
            times = arrivals.send_times("concurrency", 0, len(requests))
            result = _run(_target(urls[arm]), requests, times, concurrency=streams, duration=120,
                          prefix=f"{arm}{rep}")
            arms[arm][rep] = _with_client(_metrics(result.records), result)
            ttfts[arm] += [r.ttft * 1000 for r in result.records if r.ok]
            itls[arm] += [gap * 1000 for r in result.records if r.ok for gap in r.itl]
        load = peer.Load(streams * waves, [(128, 1.0)], concurrency=streams, seed=bench.seed)
        # not naive-gzip: aiperf sends no Accept-Encoding, so NGINX does not compress its streams, nor holds them
        figures = _peer_runs(bench, "streaming", {arm: urls[arm] for arm in arms if arm != "naive-gzip"}, load)
    # Tokens/s follows the simulator's schedule whatever the proxy does, so buffering can only show in latency.
    # naive-gzip holds each answer until it ends (the client accepts gzip, as aiohttp does by default): its first
    # token comes with its last, so the TTFT bound is the one that catches it; its gaps collapse to nothing, so the
    # ITL bound does not. With proxy_buffering alone NGINX 1.22 passes each event on as it reads it (measured since
    # 2026-12-03): the naive config's ITL is shown as measured, with no target to meet or miss.
    checks = [Check("output tokens/s, LB ÷ direct", _ratio(arms, "lb", "direct", "tok_s"), 0.97, True),
              Check("ITL p99, LB - direct", _delta(arms, "lb", "direct", "itl_p99"), 5.0, False, " ms"),
              Check("TTFT p99, LB - direct", _delta(arms, "lb", "direct", "ttft_p99"), 20.0, False, " ms"),
              Check("TTFT p99, naive-gzip (buffering on + gzip) - direct: misses the 20 ms bound",
                    _delta(arms, "naive-gzip", "direct", "ttft_p99"), 20.0, True, " ms"),
              Check.shown("ITL p99, naive (buffering on, no gzip) - direct",
                          _delta(arms, "naive", "direct", "itl_p99"), " ms")]
    plot = bench.plot_path("streaming")
    plot_comparison(plot, "1. Streaming overhead: 64 streams x 128 tokens, one simulator", [
        ("output tokens/s", _per_arm(arms, "tok_s")),
        ("ITL p99 (ms)", _per_arm(arms, "itl_p99")),
        ("TTFT p99 (ms)", _per_arm(arms, "ttft_p99"))],
        cdfs=itls, cdf_label="inter-token latency (ms), all repetitions")
    outcome = Outcome("streaming", "1. Streaming overhead",
                      f"One simulator (TTFT 50 ms, ITL 20 ms, 128 tokens), {streams} concurrent streams, "
                      f"{streams * waves} requests per run; `direct` is the simulator, `lb` the role's rendered "
                      "NGINX, `naive` the blog-post config (buffering on), `naive-gzip` the same with `gzip on; "
                      "gzip_types text/event-stream;` (the client accepts gzip).",
                      arms, [("output tokens/s", "tok_s"), ("TTFT p50 (ms)", "ttft_p50"),
                             ("TTFT p99 (ms)", "ttft_p99"), ("ITL p50 (ms)", "itl_p50"), ("ITL p99 (ms)", "itl_p99"),
                             ("failed", "failed"), *CLIENT_ROWS], checks, str(plot))
    _client_note(outcome)
    _beside_own(outcome, figures, f"{streams} concurrent streams of 128 tokens, {streams * waves} requests")
    return outcome


def keepalive(bench: Bench, concurrency: int = 16) -> Outcome:
    """2. Short requests as fast as a closed loop of 16 can go: role LB against naive config and direct."""
    duration = 1.5 if bench.quick else 5.0
    arms, _ = _collect(["direct", "lb", "naive"], bench.reps)
    with bench.simulators([bench.sim_one], ttft_ms=0, itl_ms=0, prefill_ms_per_token=0, output_tokens=1), \
            bench.nginx("lb-one") as lb, bench.nginx("naive-one") as naive:
        urls = {"direct": f"http://{bench.upstream_host}:{bench.sim_one}", "lb": lb.url, "naive": naive.url}
        for rep, arm in interleaved(list(arms), bench.reps):
            requests = workload.requests(100_000, [(1, 1.0)], 8, bench.seed + rep)
            times = arrivals.send_times("concurrency", 0, len(requests))
            result = _run(_target(urls[arm], stream=False), requests, times, concurrency=concurrency,
                          duration=duration, prefix=f"{arm}{rep}")
            arms[arm][rep] = _with_client(_metrics(result.records), result)
    checks = [Check("requests/s, LB ÷ naive", _ratio(arms, "lb", "naive", "req_s"), 2.0, True),
              Check("requests/s, LB ÷ direct", _ratio(arms, "lb", "direct", "req_s"), 0.8, True)]
    plot = bench.plot_path("keepalive")
    plot_comparison(plot, "2. Keepalive: 1-token requests, 16 in flight, one simulator", [
        ("requests/s", _per_arm(arms, "req_s")),
        ("end-to-end p50 (ms)", _per_arm(arms, "e2e_p50")),
        ("end-to-end p99 (ms)", _per_arm(arms, "e2e_p99"))])
    outcome = Outcome("keepalive", "2. Keepalive",
                   f"One simulator answering at once (1 token, no simulated latency), {concurrency} requests in "
                   f"flight for {duration:g} s per run, not streamed; the client keeps its connections alive in every "
                   "arm, so the arms differ only in what the load balancer does upstream.",
                   arms, [("requests/s", "req_s"), ("end-to-end p50 (ms)", "e2e_p50"),
                          ("end-to-end p99 (ms)", "e2e_p99"), ("failed", "failed"), *CLIENT_ROWS], checks, str(plot))
    _client_note(outcome)
    return outcome


def heterogeneous(bench: Bench) -> Outcome:
    """3. Three 8-slot simulators, 80% 16-token and 20% 512-token requests, Poisson at 80% of capacity."""
    mix = [(16, 0.8), (512, 0.2)]
    ttft_ms, itl_ms, slots = 50.0, 10.0, 8
    service_s = (ttft_ms + (workload.mean_tokens(mix) - 1) * itl_ms) / 1000
    capacity = 3 * slots / service_s
    rate, duration = 0.8 * capacity, (6.0 if bench.quick else 25.0)
    arms, ttfts = _collect(["lb", "naive", "lb-round-robin"], bench.reps)
    with bench.simulators(bench.sim_three, ttft_ms=ttft_ms, itl_ms=itl_ms, max_num_seqs=slots,
                          prefill_ms_per_token=0), \
            bench.nginx("lb-three") as lb, bench.nginx("naive-three") as naive, \
            bench.nginx("lb-round-robin") as round_robin:
        urls = {"lb": lb.url, "naive": naive.url, "lb-round-robin": round_robin.url}
        for rep, arm in interleaved(list(arms), bench.reps):
            count = int(rate * duration)
            requests = workload.requests(count, mix, 32, bench.seed + 100 + rep)
            times = arrivals.send_times("poisson", rate, count, bench.seed + 100 + rep)
            result = _run(_target(urls[arm]), requests, times, duration=duration + 1, prefix=f"{arm}{rep}")
            arms[arm][rep] = _with_client(_metrics(result.records), result)
            ttfts[arm] += [r.ttft * 1000 for r in result.records if r.ok]
        # lb and naive: the comparison's question; lb-round-robin would add run time and no second opinion on it
        load = peer.Load(int(rate * duration), mix, rate=rate, seed=bench.seed + 100)
        figures = _peer_runs(bench, "heterogeneous", {"lb": lb.url, "naive": naive.url}, load)
    checks = [Check("TTFT p90, LB ÷ naive", _ratio(arms, "lb", "naive", "ttft_p90"), 0.5, False),
              Check("TTFT p99, LB ÷ naive", _ratio(arms, "lb", "naive", "ttft_p99"), 0.7, False),
              Check("output tokens/s, LB ÷ naive", _ratio(arms, "lb", "naive", "tok_s"), 0.98, True)]
    plot = bench.plot_path("heterogeneous")
    plot_comparison(plot, "3. Heterogeneous generations at 80% load (3 x 8 slots)", [
        ("TTFT p90 (ms)", _per_arm(arms, "ttft_p90")),
        ("TTFT p99 (ms)", _per_arm(arms, "ttft_p99")),
        ("output tokens/s", _per_arm(arms, "tok_s"))],
        cdfs=ttfts, cdf_label="TTFT (ms), all repetitions")
    outcome = Outcome("heterogeneous", "3. Heterogeneous generations",
                      f"Three simulators (TTFT 50 ms, ITL 10 ms, 8 sequence slots each, FIFO queue behind them); "
                      f"80% of requests ask for 16 tokens, 20% for 512; Poisson arrivals at {rate:.1f} req/s "
                      f"(80% of the {capacity:.1f} req/s the slots can serve) for {duration:g} s, the same seeded "
                      "schedule for every arm of a repetition. `lb-round-robin` is the role's config with "
                      "`nginx_lb_balancing: round_robin`: it separates what least_conn gains from what buffering "
                      "costs.",
                      arms, [("TTFT p50 (ms)", "ttft_p50"), ("TTFT p90 (ms)", "ttft_p90"),
                             ("TTFT p99 (ms)", "ttft_p99"), ("end-to-end p99 (ms)", "e2e_p99"),
                             ("output tokens/s", "tok_s"), ("failed", "failed"), *CLIENT_ROWS],
                      checks, str(plot))
    _client_note(outcome)
    _beside_own(outcome, figures, f"the same length mix, Poisson at {rate:.1f} req/s, {int(rate * duration)} requests")
    return outcome


def _failover_run(bench: Bench, arm: str, rep: int, *, rate: float, duration: float, kill_at: float) -> dict:
    killed_port = bench.sim_three[1]
    config = "lb-three" if arm == "lb" else "naive-three"
    with bench.simulators(bench.sim_three, ttft_ms=50, itl_ms=20, max_num_seqs=16, prefill_ms_per_token=0) as sims, \
            bench.nginx(config) as server:
        victim = sims[1]
        count = int(rate * duration)
        requests = workload.requests(count, [(64, 1.0)], 32, bench.seed + 200 + rep)
        times = arrivals.send_times("poisson", rate, count, bench.seed + 200 + rep)

        async def scenario() -> tuple[loadgen.RunResult, float]:
            run = asyncio.ensure_future(loadgen.run_requests(_target(server.url), requests, times,
                                                             max_duration_s=duration + 1, id_prefix=f"{arm}{rep}"))
            await asyncio.sleep(kill_at)
            await asyncio.get_running_loop().run_in_executor(None, victim.kill)
            killed_at = time.perf_counter()
            return await run, killed_at

        result, killed_at = asyncio.run(scenario())
    accepted = Counter(request_id for sim in sims for request_id in sim.accepted_ids())
    on_victim = set(victim.accepted_ids())
    upstreams = bench.access_log(config)
    victim_addr = f"{fixtures.LOOPBACK}:{killed_port}"

    def touched_victim(record: Record) -> bool:
        return (record.instance == victim.instance_id or record.request_id in on_victim
                or victim_addr in upstreams.get(record.request_id, ""))

    failed = [record for record in result.records if not record.ok]
    metrics = _metrics(result.records)
    metrics.update({
        "sent_after_kill": sum(1 for r in result.records if r.start >= killed_at - result.started_at),
        "running_on_killed": len(on_victim - {r.request_id for r in result.records if r.ok}),
        "failed_on_killed": sum(1 for r in failed if touched_victim(r)),
        "failed_elsewhere": sum(1 for r in failed if not touched_victim(r)),
        "cut_streams": sum(1 for r in result.records if r.cut),
        "cut_elsewhere": sum(1 for r in result.records if r.cut and r.instance != victim.instance_id),
        "executed_twice": sum(1 for times_run in accepted.values() if times_run > 1),
        "not_logged": sum(1 for r in result.records if r.request_id not in upstreams),
    })
    return metrics


def failover(bench: Bench) -> Outcome:
    """4. One of three simulators SIGKILLed mid-run under Poisson load."""
    rate, duration = 12.0, (6.0 if bench.quick else 15.0)
    kill_at = duration * 0.4
    arms, _ = _collect(["lb", "naive"], bench.reps)
    for rep, arm in interleaved(list(arms), bench.reps):
        arms[arm][rep] = _failover_run(bench, arm, rep, rate=rate, duration=duration, kill_at=kill_at)
    checks = []
    for arm in arms:
        checks += [Check(f"{arm}: failed among requests not sent to the killed instance",
                         [rep["failed_elsewhere"] for rep in arms[arm]], 0, False),
                   Check(f"{arm}: requests executed twice", [rep["executed_twice"] for rep in arms[arm]], 0, False),
                   Check(f"{arm}: streams cut that were not on the killed instance",
                         [rep["cut_elsewhere"] for rep in arms[arm]], 0, False)]
    plot = bench.plot_path("failover")
    plot_comparison(plot, "4. Failover: one of three simulators killed mid-run", [
        ("failed, on the killed instance", _per_arm(arms, "failed_on_killed")),
        ("failed, elsewhere", _per_arm(arms, "failed_elsewhere")),
        ("executed twice", _per_arm(arms, "executed_twice")),
        ("TTFT p99 (ms)", _per_arm(arms, "ttft_p99"))])
    return Outcome("failover", "4. Failover",
                   f"Three simulators (TTFT 50 ms, ITL 20 ms, 64 tokens, 16 slots), Poisson at {rate:g} req/s "
                   f"for {duration:g} s; the second simulator gets SIGKILL at {kill_at:g} s. Every request carries "
                   "its own X-Request-ID; the simulators append each id they accept to a log that survives SIGKILL "
                   "(`--request-log`), and each NGINX logs every server it tried for each id.",
                   arms, [("requests sent", "requests"), ("sent after the kill", "sent_after_kill"),
                          ("running on the killed instance", "running_on_killed"),
                          ("failed, on the killed instance", "failed_on_killed"),
                          ("failed, not on the killed instance", "failed_elsewhere"),
                          ("streams cut", "cut_streams"), ("executed twice", "executed_twice"),
                          ("TTFT p99 (ms)", "ttft_p99")], checks, str(plot))


def _prefix_cache_counts(ports: list[int]) -> tuple[float, float]:
    hits = queries = 0.0
    for port in ports:
        with urllib.request.urlopen(f"http://{fixtures.LOOPBACK}:{port}/metrics", timeout=10) as response:
            for line in response.read().decode().splitlines():
                if line.startswith("vllm:prefix_cache_hits_total{"):
                    hits += float(line.rsplit(" ", 1)[1])
                elif line.startswith("vllm:prefix_cache_queries_total{"):
                    queries += float(line.rsplit(" ", 1)[1])
    return hits, queries


# KV-cache sizes per instance for the affinity sweep, in 16-token blocks. 12 users each hold one chat of about 1,300
# tokens (80 blocks) at a time: 350 blocks cannot hold the 16 running sequences an instance admits, 1000 holds them
# and most cached chats, 4000 all of them (docs/benchmarks.md, section 5, has what each size measured). The
# profile's own size (tens of thousands of blocks on an 80 GB GPU) is the run the checks read.
AFFINITY_CACHE_SWEEP = (350, 1000, 4000)


def _affinity_run(bench: Bench, arm: str, rep: int, settings: dict, *, conversations: int, duration: float,
                  prefix: str) -> tuple[dict, list[float]]:
    """One arm's multi-turn run on fresh simulators: its metrics, and the TTFT of every answered request."""
    turns, users, reply_tokens = 12, 12, 16
    config = "lb-affinity" if arm == "affinity" else "lb-three"
    talks = workload.conversations(conversations, turns, context_words=1000, turn_words=16, reply_words=reply_tokens,
                                   seed=bench.seed + 300 + rep)
    with bench.simulators(bench.sim_three, **settings) as sims, bench.nginx(config) as server:
        result = asyncio.run(loadgen.run_conversations(
            _target(server.url, api="chat"), talks, users=users, max_tokens=reply_tokens, think_time_s=0.1,
            max_duration_s=duration, id_prefix=prefix))
        hits, queries = _prefix_cache_counts(bench.sim_three)
    metrics = _metrics(result.records)
    summary = stats.summarize(result.records)
    shares = [summary["per_instance"].get(sim.instance_id, 0) for sim in sims]
    metrics.update({"hit_rate": summary["prefix_cache_hit_rate"],
                    "server_hit_rate": hits / queries if queries else float("nan"),
                    "share_max_min": max(shares) / min(shares) if min(shares) else float("inf"),
                    "share_max": max(shares) / sum(shares) if sum(shares) else float("nan")})
    return metrics, [r.ttft * 1000 for r in result.records if r.ok]


def affinity(bench: Bench) -> Outcome:
    """5. Multi-turn conversations over simulators on a GPU profile, whose KV cache is the prefix cache: affinity
    mode against least_conn, at the profile's cache size and across a sweep of smaller ones."""
    conversations = 12 if bench.quick else 24
    duration, sweep_duration = (10.0, 8.0) if bench.quick else (40.0, 20.0)
    arms, ttfts = _collect(["affinity", "least_conn"], bench.reps)
    settings = {"profile": bench.profile, "max_num_seqs": 16}
    for rep, arm in interleaved(list(arms), bench.reps):
        arms[arm][rep], ttft = _affinity_run(bench, arm, rep, settings, conversations=conversations,
                                             duration=duration, prefix=f"{arm}{rep}")
        ttfts[arm] += ttft
    sweep: dict[int, dict[str, dict]] = {}
    for blocks in AFFINITY_CACHE_SWEEP:
        for rep, arm in interleaved(list(arms), 1):
            sweep.setdefault(blocks, {})[arm], _ = _affinity_run(
                bench, arm, rep, {**settings, "kv_cache_blocks": blocks}, conversations=conversations,
                duration=sweep_duration, prefix=f"sweep{blocks}-{arm}")
    # Bounds a broken affinity misses (the same hit rate and TTFT as least_conn): even when every chat fits in
    # every cache, least_conn computes a chat's context once on each instance it lands on, affinity once.
    checks = [Check("prefix cache hit rate, affinity - least_conn", _delta(arms, "affinity", "least_conn", "hit_rate"),
                    0.1, True),
              Check("TTFT p90, affinity ÷ least_conn", _ratio(arms, "affinity", "least_conn", "ttft_p90"), 0.5,
                    False)]
    plot = bench.plot_path("affinity")
    plot_comparison(plot, f"5. Session affinity: multi-turn chats, simulators on {bench.profile}", [
        ("prefix cache hit rate", _per_arm(arms, "hit_rate")),
        ("TTFT p90 (ms)", _per_arm(arms, "ttft_p90")),
        ("requests: busiest ÷ idlest instance", _per_arm(arms, "share_max_min"))],
        cdfs=ttfts, cdf_label="TTFT (ms), all repetitions")
    sweep_plot = bench.plot_path("affinity-cache-sweep")
    plot_sweep(sweep_plot, "5. Session affinity against the KV-cache size per instance", "KV-cache blocks per instance",
               sweep, [("prefix cache hit rate", "hit_rate"), ("TTFT p90 (ms)", "ttft_p90")])
    outcome = Outcome(
        "affinity", "5. Session affinity",
        f"Three simulators on the `{bench.profile}` profile (continuous batching; its KV cache, "
        "`vllm:kv_cache_usage_perc`, is also its prefix cache, as in vLLM), 16 sequence slots each; 12 users hold "
        f"{conversations} chats of 12 turns (a 1000-word context, 16-word questions, 16-token answers), each turn "
        "resending the whole chat with an X-Session-ID header. `affinity` is the role with "
        "`nginx_lb_session_affinity: true`, `least_conn` its default. The checks read the runs at the profile's "
        "cache size; the sweep below runs each arm once at smaller sizes.",
        arms, [("prefix cache hit rate (client, cached ÷ prompt tokens)", "hit_rate"),
               ("prefix cache hit rate (simulators' metrics)", "server_hit_rate"),
               ("TTFT p50 (ms)", "ttft_p50"), ("TTFT p90 (ms)", "ttft_p90"), ("TTFT p99 (ms)", "ttft_p99"),
               ("requests: busiest ÷ idlest instance", "share_max_min"),
               ("busiest instance's share", "share_max"), ("requests", "requests"), ("failed", "failed")],
        checks, str(plot))
    outcome.notes.append(_sweep_table(sweep, sweep_plot))
    return outcome


def _sweep_table(sweep: dict[int, dict[str, dict]], plot: Path) -> str:
    lines = ["Cache-size sweep (one run per arm and size): what affinity gains depends on whether the cache holds "
             "least_conn's working set (every chat on every instance) or only affinity's (a third of them).", "",
             "| KV-cache blocks per instance | hit rate, affinity | hit rate, least_conn | TTFT p90 affinity (ms) | "
             "TTFT p90 least_conn (ms) | TTFT p90 ratio |", "|---:|---:|---:|---:|---:|---:|"]
    for blocks, by_arm in sweep.items():
        near, spread = by_arm["affinity"], by_arm["least_conn"]
        ratio = near["ttft_p90"] / spread["ttft_p90"] if spread["ttft_p90"] else float("nan")
        lines.append(f"| {blocks} | {near['hit_rate']:.2f} | {spread['hit_rate']:.2f} | {near['ttft_p90']:.0f} | "
                     f"{spread['ttft_p90']:.0f} | {ratio:.2f} |")
    lines += ["", f"![cache-size sweep](img/{plot.name})"]
    return "\n".join(lines)


def gateway(bench: Bench) -> Outcome:
    """8. The role's gateway (TLS, an API key, routing by model) against its plain config, streaming and short."""
    streams, waves = 64, (1 if bench.quick else 3)
    concurrency, duration = 16, (1.5 if bench.quick else 5.0)
    arms, ttfts = _collect(["plain", "gateway"], bench.reps)
    tls = ssl.create_default_context(cafile=str(bench.gateway_ca))

    def target(server, arm, stream):
        if arm == "plain":
            return _target(server.url, stream=stream)
        return loadgen.Target(server.url.replace("http://", "https://"), api="completions", model=MODEL,
                              stream=stream, timeout_s=TIMEOUT_S, tls=tls,
                              headers={"Authorization": f"Bearer {bench.gateway_key}"})

    with bench.simulators([bench.sim_one], ttft_ms=50, itl_ms=20, output_tokens=128, prefill_ms_per_token=0), \
            bench.nginx("lb-one") as plain, bench.nginx("lb-gateway") as gate:
        servers = {"plain": plain, "gateway": gate}
        for rep, arm in interleaved(list(arms), bench.reps):
            requests = workload.requests(streams * waves, [(128, 1.0)], 32, bench.seed + 700 + rep)
            times = arrivals.send_times("concurrency", 0, len(requests))
            cold = _metrics(_run(target(servers[arm], arm, True), requests, times, concurrency=streams,
                                 duration=120, prefix=f"cold-{arm}{rep}").records)
            result = _run(target(servers[arm], arm, True), requests, times, concurrency=streams, duration=120,
                          prefix=f"{arm}{rep}", warm=streams)
            arms[arm][rep] = dict(_metrics(result.records), cold_ttft_p99=cold["ttft_p99"], cold_failed=cold["failed"])
            ttfts[arm] += [r.ttft * 1000 for r in result.records if r.ok]
    with bench.simulators([bench.sim_one], ttft_ms=0, itl_ms=0, prefill_ms_per_token=0, output_tokens=1), \
            bench.nginx("lb-one") as plain, bench.nginx("lb-gateway") as gate:
        servers = {"plain": plain, "gateway": gate}
        for rep, arm in interleaved(list(arms), bench.reps):
            requests = workload.requests(100_000, [(1, 1.0)], 8, bench.seed + 800 + rep)
            times = arrivals.send_times("concurrency", 0, len(requests))
            result = _run(target(servers[arm], arm, False), requests, times, concurrency=concurrency,
                          duration=duration, prefix=f"short-{arm}{rep}", warm=concurrency)
            short = _metrics(result.records)
            arms[arm][rep].update(short_req_s=short["req_s"], short_failed=short["failed"])
    checks = [Check("streaming output tokens/s, gateway ÷ plain", _ratio(arms, "gateway", "plain", "tok_s"), 0.97,
                    True),
              Check("TTFT p99, gateway - plain, connections held", _delta(arms, "gateway", "plain", "ttft_p99"), 5.0,
                    False, " ms"),
              Check("short requests/s, gateway ÷ plain", _ratio(arms, "gateway", "plain", "short_req_s"), 0.8, True)]
    plot = bench.plot_path("gateway")
    plot_comparison(plot, "8. Gateway: TLS + API key + routing by model against the plain config", [
        ("output tokens/s", _per_arm(arms, "tok_s")),
        ("TTFT p99 (ms)", _per_arm(arms, "ttft_p99")),
        ("short requests/s", _per_arm(arms, "short_req_s"))],
        cdfs=ttfts, cdf_label="TTFT (ms), all repetitions")
    return Outcome("gateway", "8. Gateway",
                   f"One simulator (TTFT 50 ms, ITL 20 ms, 128 tokens), {streams} concurrent streams, "
                   f"{streams * waves} requests per run; then 1-token requests, {concurrency} in flight for "
                   f"{duration:g} s. `plain` is the role with nginx_lb_tls and nginx_lb_auth off; `gateway` the role "
                   "with TLS 1.3 (a throwaway CA the client trusts), an API key checked by its SHA-256, per-key "
                   "limits far above the load, and two model pools routed by the request body's model (njs). "
                   "Each streaming repetition runs twice: `cold`, where all 64 streams open their connections (and "
                   "the gateway's TLS handshakes) at once, and then with the client's 64 connections opened first, "
                   "as a client that keeps its connections alive holds them; the checks use the second. The client "
                   "keeps its connections alive in both arms.",
                   arms, [("output tokens/s", "tok_s"), ("TTFT p50 (ms)", "ttft_p50"), ("TTFT p99 (ms)", "ttft_p99"),
                          ("TTFT p99, cold connections (ms)", "cold_ttft_p99"), ("failed, cold", "cold_failed"),
                          ("ITL p99 (ms)", "itl_p99"), ("failed", "failed"), ("short requests/s", "short_req_s"),
                          ("short failed", "short_failed")],
                   checks, str(plot))


ALL = {"streaming": streaming, "keepalive": keepalive, "heterogeneous": heterogeneous, "failover": failover,
       "affinity": affinity, "gateway": gateway}
