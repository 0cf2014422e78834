"""The ASGI application: routing and the OpenAI-compatible endpoints.

Served by `gpufleet-simulator` (cli.py: uvicorn on uvloop and httptools, as vLLM), or by
`uvicorn --factory gpufleet_simulator.app:create_app`; configured by GPUFLEET_SIM_* variables.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable

from . import __version__
from .batched_engine import create_engine
from .config import ConfigError, SimConfig
from .engine import Sequence
from .errors import ApiError
from .exchange import JSON, SSE, ClientGone, Exchange
from .metrics import CONTENT_TYPE
from .protocol import DONE, GenerationRequest, Responder, dumps, parse_chat, parse_completion
from .tokenization import detokenize_answer, tokenize_answer
from .tokenizer import Vocabulary

logger = logging.getLogger("uvicorn.error")

# vLLM's instrumentator leaves these out of http_requests_total
_UNCOUNTED_HANDLERS = frozenset({"/metrics", "/health"})


class SimulatorApp:
    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.engine = create_engine(config)
        self.vocabulary = Vocabulary()
        self._instance_id = config.instance_id.encode()
        self._routes: dict[str, dict[str, Callable[[Exchange], Awaitable[None]]]] = {
            "/v1/models": {"GET": self._models},
            "/v1/completions": {"POST": self._completions},
            "/v1/chat/completions": {"POST": self._chat_completions},
            "/tokenize": {"POST": self._tokenize},
            "/detokenize": {"POST": self._detokenize},
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

    async def _tokenize(self, exchange: Exchange) -> None:
        self._require_ready()
        answer = tokenize_answer(await exchange.read_json(), self.config.model, self.config.max_model_len,
                                 self.vocabulary)
        await exchange.respond(200, dumps(answer))

    async def _detokenize(self, exchange: Exchange) -> None:
        self._require_ready()
        answer = detokenize_answer(await exchange.read_json(), self.config.model, self.vocabulary)
        await exchange.respond(200, dumps(answer))

    async def _generate(self, exchange: Exchange, parse: Callable[..., GenerationRequest]) -> None:
        self._require_ready()
        request = parse(await exchange.read_json(), self.config.model, self.vocabulary)
        failure = self.engine.injected_failure()
        if failure is not None:
            raise failure
        seqs = self.engine.new_sequences(exchange.request_id, request.prompts, request.max_tokens, n=request.n,
                                         stop=request.stop, seed=request.seed)
        responder = Responder(request, exchange.request_id, self.config.model, self.engine.caches_prefixes)
        if request.stream:
            self.engine.check_capacity(len(seqs))
            await exchange.start(200, SSE)
            stream = self._stream if len(seqs) == 1 else self._stream_choices
            await exchange.run_until_disconnect(stream(exchange, seqs, responder, request))
        else:
            await exchange.run_until_disconnect(self._complete(exchange, seqs, responder))

    async def _run(self, seq: Sequence) -> str:
        async with self.engine.running(seq):
            return await self.engine.complete(seq)

    async def _complete(self, exchange: Exchange, seqs: list[Sequence], responder: Responder) -> None:
        if len(seqs) == 1:
            texts = [await self._run(seqs[0])]
        else:
            tasks = [asyncio.ensure_future(self._run(seq)) for seq in seqs]
            try:
                texts = await asyncio.gather(*tasks)
            finally:  # one choice failed or the client left: the others stop too (and count as aborted)
                for task in tasks:
                    task.cancel()
        await exchange.respond(200, responder.full(texts, seqs), JSON)

    async def _stream(self, exchange: Exchange, seqs: list[Sequence], responder: Responder,
                      request: GenerationRequest) -> None:
        seq = seqs[0]
        last = seq.max_tokens - 1
        async with self.engine.running(seq):
            index = 0
            async for token in self.engine.stream(seq):
                final = index == last
                chunk = responder.token_chunk(token, 0, seq.finish_reason if final else None,
                                              seq.stop_reason if final else None)
                if index == 0 and request.chat:
                    chunk = responder.role_chunks(1) + chunk  # vLLM sends the role with the first output
                await exchange.body(chunk)
                index += 1
        await exchange.body(self._stream_tail(responder, request, seqs), more=False)

    async def _stream_choices(self, exchange: Exchange, seqs: list[Sequence], responder: Responder,
                              request: GenerationRequest) -> None:
        """Several choices at once: each runs as its own sequence, chunks go out in the order tokens come."""
        chunks: asyncio.Queue[bytes | None] = asyncio.Queue()

        async def produce(choice: int, seq: Sequence) -> None:
            last = seq.max_tokens - 1
            async with self.engine.running(seq):
                position = 0
                async for token in self.engine.stream(seq):
                    final = position == last
                    chunks.put_nowait(responder.token_chunk(token, choice, seq.finish_reason if final else None,
                                                            seq.stop_reason if final else None))
                    position += 1

        tasks = [asyncio.ensure_future(produce(choice, seq)) for choice, seq in enumerate(seqs)]
        for task in tasks:
            task.add_done_callback(lambda _: chunks.put_nowait(None))
        try:
            running, first = len(tasks), True
            while running:
                chunk = await chunks.get()
                if chunk is None:
                    running -= 1
                    continue
                if first and request.chat:
                    chunk = responder.role_chunks(len(seqs)) + chunk
                first = False
                await exchange.body(chunk)
            for task in tasks:
                task.result()  # a choice that failed ends the stream with its error event
        finally:
            for task in tasks:
                task.cancel()
        await exchange.body(self._stream_tail(responder, request, seqs), more=False)

    @staticmethod
    def _stream_tail(responder: Responder, request: GenerationRequest, seqs: list[Sequence]) -> bytes:
        return responder.usage_chunk(seqs) + DONE if request.include_usage else DONE


def create_app(config: SimConfig | None = None) -> SimulatorApp:
    """uvicorn factory; without a config it reads GPUFLEET_SIM_* and exits with a clear message when invalid."""
    if config is not None:
        return SimulatorApp(config)  # a ConfigError (a KV cache too small for the profile) is the caller's
    try:
        return SimulatorApp(SimConfig.from_env(os.environ))
    except ConfigError as exc:
        raise SystemExit(f"gpufleet-simulator: invalid configuration: {exc}") from None
