"""Traffic for the lab's day-2 tests and the rollout benchmark: streamed chats through a load balancer, the
readiness of an instance, and threads that run them in the background until stopped."""

from __future__ import annotations

import ssl
import statistics
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import httpx

BODY = {"model": "simulated-llm", "stream": True, "max_tokens": 16,
        "messages": [{"role": "user", "content": "Tell me about rolling restarts."}]}
CLOSED_BEFORE_A_RESPONSE = "closed before a response"
ADMIN_KEY = "lab-admin"


def lab_key(hostvars: dict, name: str = ADMIN_KEY) -> str:
    """The lab's API key ``name``, from the file the lab role made (inventories/lab: lab_api_key_dir)."""
    return (Path(hostvars["lab_api_key_dir"]).expanduser() / name).read_text().strip()


def lab_tls(hostvars: dict) -> ssl.SSLContext:
    """TLS that trusts the lab's fleet CA (a load balancer's nginx_lb_tls_fleet_ca_dir) and nothing else."""
    return ssl.create_default_context(cafile=str(Path(hostvars["nginx_lb_tls_fleet_ca_dir"]).expanduser() / "ca.crt"))


def lab_client(hostvars: dict, key: str | None = ADMIN_KEY, **kwargs) -> httpx.Client:
    """A client of the lab's load balancers as a customer has one: the fleet CA trusted, the key ``key`` sent.

    ``hostvars``: a load balancer's variables as ansible-inventory lists them.
    """
    headers = {"Authorization": f"Bearer {lab_key(hostvars, key)}"} if key else {}
    return httpx.Client(verify=lab_tls(hostvars), headers=headers, **kwargs)


def published_url(hostvars: dict, container_port: int, scheme: str) -> str:
    """SCHEME://ADDRESS:HOST_PORT where the lab publishes the host's container_port on this machine."""
    for entry in hostvars.get("lab_publish", []):
        address, host_port, port = entry.rsplit(":", 2)
        if int(port) == int(container_port):
            return f"{scheme}://{address}:{host_port}"
    raise LookupError(f"the host publishes no port {container_port} (lab_publish)")


@dataclass
class Outcome:
    what: str  # "ok", or what went wrong
    ttft_s: float | None
    resent: bool

    @property
    def ok(self) -> bool:
        return self.what == "ok"


def _once(client: httpx.Client, url: str, model: str) -> tuple[str, float | None]:
    started, ttft, lines = time.monotonic(), None, []
    try:
        with client.stream("POST", f"{url}/v1/chat/completions", json=dict(BODY, model=model)) as response:
            for line in response.iter_lines():
                if line:
                    if ttft is None and '"content"' in line:
                        ttft = time.monotonic() - started
                    lines.append(line)
    except httpx.RemoteProtocolError as exc:
        if "without sending a response" in str(exc):
            return CLOSED_BEFORE_A_RESPONSE, None
        return f"cut mid-stream after {len(lines)} events: {exc}", None
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}", None
    if response.status_code == 200 and lines and lines[-1] == "data: [DONE]":
        return "ok", ttft
    return f"{response.status_code} {lines[-1:] if lines else 'no body'}", None


def stream_chat(client: httpx.Client, url: str, model: str = BODY["model"]) -> Outcome:
    """A streamed chat that must end in `data: [DONE]`.

    NGINX's old workers close idle keepalive connections at a graceful reload; a request sent on one at that
    instant gets no byte back and reached no model server. HTTP clients (the openai client's retries among them)
    send it again on a new connection; so does this, once, and says so.
    """
    what, ttft = _once(client, url, model)
    if what != CLOSED_BEFORE_A_RESPONSE:
        return Outcome(what, ttft, resent=False)
    what, ttft = _once(client, url, model)
    return Outcome(what, ttft, resent=True)


def answers_models(client: httpx.Client, url: str) -> bool:
    """Whether the model server at ``url`` is ready: its /v1/models answers 200 (503 while its model loads)."""
    try:
        return client.get(f"{url}/v1/models").status_code == 200
    except httpx.HTTPError:
        return False


class Background:
    """Threads that run until the ``with`` block ends; each loop checks ``self.stop`` and bounds itself in time."""

    def __init__(self):
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads: list[threading.Thread] = []

    def run(self, target, *args) -> None:
        self.threads.append(threading.Thread(target=target, args=args, daemon=True))

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=90)


class PoolStreams(Background):
    """Streamed chats of one pool through its region's load balancer until stopped (bounded in count and time);
    each answered one is kept as (monotonic time, TTFT)."""

    def __init__(self, fleet, region, model, *, streams=4, seconds=300, requests=4000):
        super().__init__()
        self.outcomes, self.failures, self.samples = Counter(), [], []
        self.deadline = time.monotonic() + seconds
        url = fleet.lb_url(region)

        def stream():
            with fleet.client(timeout=60) as client:
                while not self.stop.is_set() and time.monotonic() < self.deadline:
                    with self.lock:
                        if sum(self.outcomes.values()) >= requests:
                            return
                    outcome = stream_chat(client, url, model)
                    with self.lock:
                        self.outcomes["ok" if outcome.ok else "failed"] += 1
                        if outcome.ok:
                            self.samples.append((time.monotonic(), outcome.ttft_s))
                        else:
                            self.failures.append(outcome.what)

        for _ in range(streams):
            self.run(stream)

    def ttft_p95(self, start, end):
        """TTFT p95 of the streams answered between ``start`` and ``end``; None with fewer than 20."""
        with self.lock:
            values = [ttft for at, ttft in self.samples if start <= at < end and ttft is not None]
        return statistics.quantiles(values, n=20)[-1] if len(values) >= 20 else None
