"""One HTTP request/response over raw ASGI: body reading, common headers, status accounting."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from .errors import ApiError

MAX_BODY_BYTES = 16 * 1024 * 1024
JSON = b"application/json"
SSE = b"text/event-stream; charset=utf-8"
# vLLM answers a body FastAPI cannot parse from its validation_exception_handler: type is the status phrase
BODY_INVALID = "Bad Request"


class ClientGone(Exception):
    """The client disconnected before its request body was complete; there is nobody to answer."""


class Exchange:
    def __init__(self, scope: dict, receive: Callable[[], Awaitable[dict]], send: Callable[[dict], Awaitable[None]],
                 instance_id: bytes, on_status: Callable[[int], None]) -> None:
        self.scope = scope
        self.receive = receive
        self._send = send
        self._on_status = on_status
        client_id = next((value for name, value in scope["headers"] if name == b"x-request-id"), None)
        self.request_id = client_id.decode("latin-1") if client_id else uuid.uuid4().hex
        self._common_headers = [(b"x-request-id", client_id or self.request_id.encode()),
                                (b"x-gpufleet-instance", instance_id)]
        self.started = False

    async def read_json(self) -> dict:
        chunks, size, more = [], 0, True
        while more:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise ApiError(413, f"Request body exceeds {MAX_BODY_BYTES} bytes.")
            chunks.append(chunk)
            more = message.get("more_body", False)
        try:
            body = json.loads(b"".join(chunks))
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, f"Invalid JSON body: {exc}.", BODY_INVALID) from None
        if not isinstance(body, dict):
            raise ApiError(400, "The JSON body must be an object.", BODY_INVALID)
        return body

    async def start(self, status: int, content_type: bytes, extra: list[tuple[bytes, bytes]] | None = None,
                    length: int | None = None) -> None:
        headers = [(b"content-type", content_type), *self._common_headers, *(extra or ())]
        if length is not None:
            headers.append((b"content-length", str(length).encode()))
        self.started = True
        self._on_status(status)
        await self._send({"type": "http.response.start", "status": status, "headers": headers})

    async def body(self, data: bytes, more: bool = True) -> None:
        await self._send({"type": "http.response.body", "body": data, "more_body": more})

    async def respond(self, status: int, data: bytes, content_type: bytes = JSON,
                      extra: list[tuple[bytes, bytes]] | None = None) -> None:
        await self.start(status, content_type, extra, len(data))
        await self.body(data, more=False)

    async def error(self, exc: ApiError, extra: list[tuple[bytes, bytes]] | None = None) -> None:
        await self.respond(exc.status, exc.body(), extra=extra)

    async def run_until_disconnect(self, work: Awaitable[Any]) -> None:
        """Run work, cancelling it the moment the client goes away so its sequence slot frees at once."""
        current = asyncio.current_task()
        gone = False

        async def watch() -> None:
            nonlocal gone
            while (await self.receive())["type"] != "http.disconnect":
                pass
            gone = True
            current.cancel()

        watcher = asyncio.ensure_future(watch())
        try:
            await work
        except asyncio.CancelledError:
            if not gone:
                raise
            current.uncancel()
        finally:
            # work returns right after its last send, before the watcher sees the "response complete" disconnect
            watcher.cancel()
