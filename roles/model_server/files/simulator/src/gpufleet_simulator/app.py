"""The ASGI application: routing and the OpenAI-compatible endpoints.

Served with `uvicorn --factory gpufleet_simulator.app:create_app`, configured by GPUFLEET_SIM_* variables.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Awaitable, Callable

from . import __version__
from .config import ConfigError, SimConfig
from .engine import Engine, Sequence
from .errors import ApiError
from .exchange import JSON, SSE, ClientGone, Exchange
from .metrics import CONTENT_TYPE
from .protocol import DONE, GenerationRequest, Responder, dumps, parse_chat, parse_completion

logger = logging.getLogger("uvicorn.error")

# vLLM's instrumentator leaves these out of http_requests_total
_UNCOUNTED_HANDLERS = frozenset({"/metrics", "/health"})


class SimulatorApp:
    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.engine = Engine(config)
        self._instance_id = config.instance_id.encode()
        self._routes: dict[str, dict[str, Callable[[Exchange], Awaitable[None]]]] = {
            "/v1/models": {"GET": self._models},
            "/v1/completions": {"POST": self._completions},
            "/v1/chat/completions": {"POST": self._chat_completions},
            "/health": {"GET": self._health},
            # vLLM answers /ping (GET or POST, for SageMaker) with its /health handler
            "/ping": {"GET": self._health, "POST": self._health},
            "/version": {"GET": self._version},
            "/metrics": {"GET": self._metrics},
        }

    async def __call__(self, scope: dict, receive, send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.engine.started_at = time.monotonic()  # the start-up delay runs from when the server starts
                logger.info("gpufleet-simulator %s serving %r as instance %r", __version__, self.config.model,
                            self.config.instance_id)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: dict, receive, send) -> None:
        path, method = scope["path"], scope["method"]
        methods = self._routes.get(path)
        handler_label = path if methods is not None else "none"

        def count(status: int) -> None:
            if handler_label not in _UNCOUNTED_HANDLERS:
                self.engine.metrics.count_http(method, status, handler_label)

        exchange = Exchange(scope, receive, send, self._instance_id, count)
        try:
            if methods is None:
                raise ApiError(404, f"Not Found: {path}")
            handler = methods.get(method)
            if handler is None:
                allow = ", ".join(methods).encode()
                await exchange.error(ApiError(405, "Method Not Allowed"), extra=[(b"allow", allow)])
                return
            await handler(exchange)
        except ClientGone:
            pass
        except ApiError as exc:
            if not exchange.started:
                await exchange.error(exc)
            else:  # mid-stream, as vLLM does: an error event, then the end marker
                await exchange.body(b"data: " + exc.body() + b"\n\n" + DONE, more=False)

    async def _health(self, exchange: Exchange) -> None:
        if not self.engine.ready:
            raise ApiError(503, "The model is still loading.")
        await exchange.respond(200, b"")

    async def _version(self, exchange: Exchange) -> None:
        # vLLM's shape, {"version": VLLM_VERSION}; the version is the simulator's own, not a vLLM it pretends to be
        await exchange.respond(200, dumps({"version": __version__}))

    async def _metrics(self, exchange: Exchange) -> None:
        await exchange.respond(200, self.engine.metrics.render(), CONTENT_TYPE.encode())

    def _require_ready(self) -> None:
        if not self.engine.ready:
            raise ApiError(503, "The model is still loading.")

    async def _models(self, exchange: Exchange) -> None:
        self._require_ready()
        created = int(self.engine.started_at_wall)
        model = {"id": self.config.model, "object": "model", "created": created, "owned_by": "vllm",
                 "root": self.config.model, "parent": None, "max_model_len": self.config.max_model_len,
                 "permission": [{"id": f"modelperm-{exchange.request_id}", "object": "model_permission",
                                 "created": created, "allow_create_engine": False, "allow_sampling": True,
                                 "allow_logprobs": True, "allow_search_indices": False, "allow_view": True,
                                 "allow_fine_tuning": False, "organization": "*", "group": None,
                                 "is_blocking": False}]}
        await exchange.respond(200, dumps({"object": "list", "data": [model]}))

    async def _completions(self, exchange: Exchange) -> None:
        await self._generate(exchange, parse_completion)

    async def _chat_completions(self, exchange: Exchange) -> None:
        await self._generate(exchange, parse_chat)

    async def _generate(self, exchange: Exchange, parse: Callable[[dict, str], GenerationRequest]) -> None:
        self._require_ready()
        request = parse(await exchange.read_json(), self.config.model)
        failure = self.engine.injected_failure()
        if failure is not None:
            raise failure
        seq = self.engine.new_sequence(exchange.request_id, request.prompt_tokens, request.max_tokens, request.stop,
                                       request.seed)
        responder = Responder(request, exchange.request_id, self.config.model, self.engine.prefix_cache is not None)
        if request.stream:
            self.engine.check_capacity()
            await exchange.start(200, SSE)
            await exchange.run_until_disconnect(self._stream(exchange, seq, responder, request))
        else:
            await exchange.run_until_disconnect(self._complete(exchange, seq, responder))

    async def _complete(self, exchange: Exchange, seq: Sequence, responder: Responder) -> None:
        async with self.engine.running(seq):
            text = await self.engine.complete(seq)
        await exchange.respond(200, responder.full(text, seq), JSON)

    async def _stream(self, exchange: Exchange, seq: Sequence, responder: Responder,
                      request: GenerationRequest) -> None:
        last = seq.max_tokens - 1
        async with self.engine.running(seq):
            index = 0
            async for token in self.engine.stream(seq):
                final = index == last
                chunk = responder.token_chunk(token, seq.finish_reason if final else None,
                                              seq.stop_reason if final else None)
                if index == 0 and request.chat:
                    chunk = responder.role_chunk() + chunk  # vLLM sends the role with the first output
                await exchange.body(chunk)
                index += 1
        tail = responder.usage_chunk(seq) + DONE if request.include_usage else DONE
        await exchange.body(tail, more=False)


def create_app(config: SimConfig | None = None) -> SimulatorApp:
    """uvicorn factory; without a config it reads GPUFLEET_SIM_* and exits with a clear message when invalid."""
    if config is None:
        try:
            config = SimConfig.from_env(os.environ)
        except ConfigError as exc:
            raise SystemExit(f"gpufleet-simulator: invalid configuration: {exc}") from None
    return SimulatorApp(config)
