"""One request to an OpenAI-compatible endpoint, timed token by token as the client sees it."""

from __future__ import annotations

import dataclasses
import json
import time

import aiohttp

INSTANCE_HEADER = "x-gpufleet-instance"  # set by the gpufleet simulator
UPSTREAM_HEADER = "x-gpufleet-upstream"  # set by the nginx_lb role


@dataclasses.dataclass
class Record:
    request_id: str
    start: float  # seconds from the start of the run to sending the request
    session: str | None = None
    status: int | None = None
    error: str | None = None
    completed: bool = False  # the whole response arrived: [DONE] for a stream, the body otherwise
    ttft: float | None = None
    e2e: float | None = None
    itl: list[float] = dataclasses.field(default_factory=list)
    output_tokens: int = 0
    prompt_tokens: int | None = None
    cached_tokens: int | None = None
    instance: str | None = None
    upstream: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.completed and self.error is None

    @property
    def tpot(self) -> float | None:
        """Time per output token after the first; None for one-token answers."""
        if self.ttft is None or self.e2e is None or self.output_tokens < 2:
            return None
        return (self.e2e - self.ttft) / (self.output_tokens - 1)

    @property
    def cut(self) -> bool:
        """The response started (headers came) but broke off."""
        return self.status == 200 and not self.completed


def _text_of(choice: dict) -> str:
    if "delta" in choice:
        return choice["delta"].get("content") or ""
    return choice.get("text") or ""


def _take_usage(record: Record, usage: dict | None) -> None:
    if not usage:
        return
    record.prompt_tokens = usage.get("prompt_tokens")
    record.output_tokens = usage.get("completion_tokens") or record.output_tokens
    details = usage.get("prompt_tokens_details") or {}
    record.cached_tokens = details.get("cached_tokens")


async def _read_stream(response: aiohttp.ClientResponse, record: Record, sent: float) -> None:
    last = sent
    chunks = 0
    async for raw in response.content:
        line = raw.strip()
        if not line.startswith(b"data:"):
            continue
        data = line[5:].strip()
        if data == b"[DONE]":
            record.completed = True
            break
        now = time.perf_counter()
        event = json.loads(data)
        if "error" in event:
            record.error = f"stream error: {event['error'].get('message', event['error'])}"[:200]
            break
        choices = event.get("choices") or []
        if choices and _text_of(choices[0]):
            if record.ttft is None:
                record.ttft = now - sent
            else:
                record.itl.append(now - last)
            last = now
            chunks += 1
        _take_usage(record, event.get("usage"))
    if record.output_tokens == 0 or record.output_tokens < chunks:
        record.output_tokens = chunks


async def send(session: aiohttp.ClientSession, url: str, body: dict, headers: dict[str, str], record: Record, *,
               timeout_s: float) -> Record:
    """POST body to url, filling record; never raises for transport or HTTP errors, it records them."""
    sent = time.perf_counter()
    try:
        async with session.post(url, json=body, headers=headers,
                                timeout=aiohttp.ClientTimeout(total=timeout_s)) as response:
            record.status = response.status
            record.instance = response.headers.get(INSTANCE_HEADER)
            record.upstream = response.headers.get(UPSTREAM_HEADER)
            if response.status != 200:
                record.error = f"HTTP {response.status}"
                await response.read()
            elif body.get("stream"):
                await _read_stream(response, record, sent)
            else:
                payload = await response.json(content_type=None)
                record.ttft = time.perf_counter() - sent
                choices = payload.get("choices") or [{}]
                text = choices[0].get("text") or (choices[0].get("message") or {}).get("content") or ""
                record.output_tokens = 1 if text else 0
                _take_usage(record, payload.get("usage"))
                record.completed = True
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        record.error = f"{type(exc).__name__}: {exc}"[:200]
    record.e2e = time.perf_counter() - sent
    return record
