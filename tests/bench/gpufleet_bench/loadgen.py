"""Drive an endpoint: requests on an arrival schedule (open loop) or at a fixed concurrency, or conversations.

Every run is bounded twice: by the number of requests given and by max_duration_s, after which nothing new
is sent and requests in flight run to their own timeout.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ssl
import time
from collections import deque
from collections.abc import Sequence

import aiohttp

from .client import Record, send
from .workload import Conversation, Request


@dataclasses.dataclass
class Target:
    base_url: str
    api: str = "completions"  # or "chat"
    model: str | None = None  # None: ask /v1/models
    stream: bool = True
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    session_header: str = "X-Session-ID"
    timeout_s: float = 300.0
    ignore_eos: bool = False  # vLLM extension: always generate max_tokens
    tls: ssl.SSLContext | None = None  # what an https base_url must be trusted by (None: the system's roots)

    @property
    def url(self) -> str:
        return self.base_url.rstrip("/") + ("/v1/chat/completions" if self.api == "chat" else "/v1/completions")


@dataclasses.dataclass
class RunResult:
    records: list[Record]
    started_at: float  # time.perf_counter() when the first request could go
    wall_s: float = 0.0  # from the first send to the last answer
    cpu_s: float = 0.0  # this process's CPU time (user and system) over wall_s: the client's own cost

    @property
    def cpu_per_request_us(self) -> float:
        return self.cpu_s / len(self.records) * 1e6 if self.records else float("nan")

    @property
    def core_share(self) -> float:
        """Of one core, how much the client used: near 1, the client and not the server set the pace."""
        return self.cpu_s / self.wall_s if self.wall_s else float("nan")


def _connector(max_concurrency: int | None, tls: ssl.SSLContext | None = None) -> aiohttp.TCPConnector:
    # keep-alive on, and never fewer pooled connections than requests in flight, so the client adds no queue
    return aiohttp.TCPConnector(limit=max_concurrency or 0, limit_per_host=0, force_close=False,
                                ssl=tls if tls is not None else True)


async def discover_model(http: aiohttp.ClientSession, target: Target) -> str | None:
    try:
        async with http.get(target.base_url.rstrip("/") + "/v1/models", headers=target.headers,
                            timeout=aiohttp.ClientTimeout(total=30)) as response:
            models = (await response.json(content_type=None)).get("data") or []
            return models[0]["id"] if models else None
    except (aiohttp.ClientError, TimeoutError, ValueError, KeyError, AttributeError):
        return None


def _body(target: Target, model: str | None, max_tokens: int, prompt: str | None = None,
          messages: list[dict] | None = None) -> dict:
    body: dict = {"max_tokens": max_tokens, "stream": target.stream}
    if model:
        body["model"] = model
    if messages is not None:
        body["messages"] = messages
    elif target.api == "chat":
        body["messages"] = [{"role": "user", "content": prompt}]
    else:
        body["prompt"] = prompt
    if target.stream:
        body["stream_options"] = {"include_usage": True}
    if target.ignore_eos:
        body["ignore_eos"] = True
    return body


def _headers(target: Target, record: Record) -> dict[str, str]:
    headers = {**target.headers, "X-Request-ID": record.request_id}
    if record.session:
        headers[target.session_header] = record.session
    return headers


async def run_requests(target: Target, requests: Sequence[Request], send_times: Sequence[float], *,
                       max_concurrency: int | None = None, max_duration_s: float | None = None,
                       id_prefix: str = "req", warm_connections: int = 0) -> RunResult:
    """Send requests[i] at send_times[i] (seconds from the start), holding at most max_concurrency in flight.

    warm_connections: open that many connections first (concurrent GET /v1/models, not recorded), so that
    the run measures a client that already holds its connections, TLS handshakes done.
    """
    if len(send_times) != len(requests):
        raise ValueError("one send time per request")
    records: list[Record] = []
    async with aiohttp.ClientSession(connector=_connector(max_concurrency, target.tls)) as http:
        model = target.model or await discover_model(http, target)

        async def warm() -> None:
            async with http.get(target.base_url.rstrip("/") + "/v1/models", headers=target.headers) as response:
                await response.read()

        await asyncio.gather(*(warm() for _ in range(warm_connections)))
        limit = asyncio.Semaphore(max_concurrency) if max_concurrency else None
        tasks = []
        started_at, cpu_at = time.perf_counter(), time.process_time()

        def expired() -> bool:
            return max_duration_s is not None and time.perf_counter() - started_at >= max_duration_s

        async def one(request: Request, record: Record) -> None:
            try:
                await send(http, target.url, _body(target, model, request.max_tokens, request.prompt),
                           _headers(target, record), record, timeout_s=target.timeout_s)
            finally:
                if limit is not None:
                    limit.release()

        for index, (request, at) in enumerate(zip(requests, send_times, strict=True)):
            delay = started_at + at - time.perf_counter()
            if max_duration_s is not None and at >= max_duration_s:
                break
            if delay > 0:
                await asyncio.sleep(delay)
            if limit is not None:
                await limit.acquire()
            if expired():
                if limit is not None:
                    limit.release()
                break
            record = Record(f"{id_prefix}-{index}", time.perf_counter() - started_at, request.session)
            records.append(record)
            tasks.append(asyncio.ensure_future(one(request, record)))
        await asyncio.gather(*tasks)
    return RunResult(records, started_at, time.perf_counter() - started_at, time.process_time() - cpu_at)


async def run_conversations(target: Target, conversations: Sequence[Conversation], *, users: int, max_tokens: int,
                            think_time_s: float = 0.0, max_duration_s: float | None = None,
                            id_prefix: str = "turn") -> RunResult:
    """users simulated users, each holding one conversation at a time and sending its turns one after another.

    Each turn's prompt is the whole conversation so far, so it extends the previous turn's prompt: a server
    that saw the previous turn can serve it from its prefix cache.
    """
    records: list[Record] = []
    waiting = deque(conversations)
    url = dataclasses.replace(target, api="chat").url
    async with aiohttp.ClientSession(connector=_connector(users, target.tls)) as http:
        model = target.model or await discover_model(http, target)
        started_at = time.perf_counter()

        def expired() -> bool:
            return max_duration_s is not None and time.perf_counter() - started_at >= max_duration_s

        async def user() -> None:
            while waiting and not expired():
                conversation = waiting.popleft()
                messages = [{"role": "system", "content": conversation.context}]
                for turn, (text, reply) in enumerate(zip(conversation.turns, conversation.replies, strict=True)):
                    if expired():
                        return
                    messages.append({"role": "user", "content": text})
                    record = Record(f"{id_prefix}-{conversation.session}-{turn}", time.perf_counter() - started_at,
                                    conversation.session)
                    records.append(record)
                    await send(http, url, _body(target, model, max_tokens, messages=messages),
                               _headers(target, record), record, timeout_s=target.timeout_s)
                    if not record.ok:
                        break  # a real user would not go on with a broken conversation
                    messages.append({"role": "assistant", "content": reply})
                    if think_time_s:
                        await asyncio.sleep(think_time_s)

        await asyncio.gather(*(user() for _ in range(users)))
    return RunResult(records, started_at)
