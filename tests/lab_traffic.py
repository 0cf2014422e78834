"""Traffic for the lab's day-2 tests and the rollout benchmark: streamed chats through a load balancer, the
readiness of an instance, and threads that run them in the background until stopped."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import httpx

BODY = {"model": "simulated-llm", "stream": True, "max_tokens": 16,
        "messages": [{"role": "user", "content": "Tell me about rolling restarts."}]}
CLOSED_BEFORE_A_RESPONSE = "closed before a response"


@dataclass
class Outcome:
    what: str  # "ok", or what went wrong
    ttft_s: float | None
    resent: bool

    @property
    def ok(self) -> bool:
        return self.what == "ok"


def _once(client: httpx.Client, url: str) -> tuple[str, float | None]:
    started, ttft, lines = time.monotonic(), None, []
    try:
        with client.stream("POST", f"{url}/v1/chat/completions", json=BODY) as response:
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


def stream_chat(client: httpx.Client, url: str) -> Outcome:
    """A streamed chat that must end in `data: [DONE]`.

    NGINX's old workers close idle keepalive connections at a graceful reload; a request sent on one at that
    instant gets no byte back and reached no model server. HTTP clients (the openai client's retries among them)
    send it again on a new connection; so does this, once, and says so.
    """
    what, ttft = _once(client, url)
    if what != CLOSED_BEFORE_A_RESPONSE:
        return Outcome(what, ttft, resent=False)
    what, ttft = _once(client, url)
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
