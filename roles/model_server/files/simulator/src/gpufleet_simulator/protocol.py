"""OpenAI/vLLM request parsing and response bodies (same JSON shapes as vLLM's OpenAI server)."""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any

from .engine import Sequence
from .errors import ApiError
from .sampling import parse_fields, reject_unsupported, stop_strings, verify
from .tokenizer import chat_prompt, tokenize

DONE = b"data: [DONE]\n\n"
_MARK = "\x00token\x00"


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


@dataclasses.dataclass
class GenerationRequest:
    chat: bool
    prompt_tokens: list[str]
    max_tokens: int | None
    stream: bool
    include_usage: bool
    stop: list[str]
    seed: int | None


def _common(body: dict, served_model: str, chat: bool, prompt_tokens: list[str]) -> GenerationRequest:
    fields = parse_fields(body)
    model = fields.model or served_model
    if model != served_model:
        raise ApiError(404, f"The model `{model}` does not exist.", "NotFoundError", "model")
    max_tokens = fields.max_tokens
    if chat and fields.max_completion_tokens is not None:
        max_tokens = fields.max_completion_tokens
    verify(fields, max_tokens)
    reject_unsupported(fields)
    if fields.n not in (None, 1):
        raise ApiError(400, "Only n=1 is supported by the simulator.", param="n")
    # vLLM: include_usage = request.stream_options.include_usage if request.stream_options else False
    include_usage = bool(fields.stream_options and fields.stream_options.include_usage)
    return GenerationRequest(chat, prompt_tokens, max_tokens, bool(fields.stream), include_usage,
                             stop_strings(fields), fields.seed)


def parse_completion(body: dict, served_model: str) -> GenerationRequest:
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], (str, list)):
        prompt = prompt[0]  # a batch of one
    if isinstance(prompt, str):
        tokens = tokenize(prompt)
    elif isinstance(prompt, list) and prompt and all(isinstance(t, int) and not isinstance(t, bool) for t in prompt):
        tokens = [str(t) for t in prompt]  # token ids are tokens already
    else:
        raise ApiError(400, "'prompt' must be a string or a list of token ids (batches are not supported).",
                       param="prompt")
    return _common(body, served_model, False, tokens)


def _text_of(content: Any) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    raise ApiError(400, "Message 'content' must be a string or a list of content parts.", param="messages")


def parse_chat(body: dict, served_model: str) -> GenerationRequest:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "'messages' must be a non-empty list.", param="messages")
    rendered = []
    for message in messages:
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise ApiError(400, "Every message needs a string 'role'.", param="messages")
        rendered.append({"role": message["role"], "content": _text_of(message.get("content"))})
    return _common(body, served_model, True, tokenize(chat_prompt(rendered)))


class Responder:
    """Builds the bodies for one request; streamed token chunks reuse a pre-serialised template."""

    def __init__(self, request: GenerationRequest, request_id: str, model: str, prefix_cache: bool) -> None:
        self.chat = request.chat
        self.prefix_cache = prefix_cache
        self.head = {
            "id": ("chatcmpl-" if request.chat else "cmpl-") + request_id,
            "object": "chat.completion.chunk" if request.chat else "text_completion",
            "created": int(time.time()),
            "model": model,
        }
        self._before, self._after = dumps(self._chunk(_MARK, None)).split(json.dumps(_MARK).encode())
        self._before = b"data: " + self._before
        self._after += b"\n\n"

    def _chunk(self, text: str, finish_reason: str | None, stop_reason: str | None = None) -> dict:
        if self.chat:
            choice = {"index": 0, "delta": {"content": text}, "logprobs": None, "finish_reason": finish_reason}
        else:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason}
        choice["stop_reason"] = stop_reason
        return {**self.head, "choices": [choice]}

    def usage(self, seq: Sequence) -> dict:
        prompt, completion = len(seq.prompt_tokens), seq.generated
        details = {"cached_tokens": seq.cached_tokens} if self.prefix_cache else None
        return {"prompt_tokens": prompt, "total_tokens": prompt + completion, "completion_tokens": completion,
                "prompt_tokens_details": details}

    def role_chunk(self) -> bytes:
        choice = {"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}
        return b"data: " + dumps({**self.head, "choices": [choice]}) + b"\n\n"

    def token_chunk(self, token: str, finish_reason: str | None = None, stop_reason: str | None = None) -> bytes:
        if finish_reason is not None:
            return b"data: " + dumps(self._chunk(token, finish_reason, stop_reason)) + b"\n\n"
        return self._before + json.dumps(token, ensure_ascii=False).encode() + self._after

    def usage_chunk(self, seq: Sequence) -> bytes:
        return b"data: " + dumps({**self.head, "choices": [], "usage": self.usage(seq)}) + b"\n\n"

    def full(self, text: str, seq: Sequence) -> bytes:
        if self.chat:
            choice = {"index": 0, "message": {"role": "assistant", "content": text, "tool_calls": []},
                      "logprobs": None, "finish_reason": seq.finish_reason, "stop_reason": seq.stop_reason}
            kind = "chat.completion"
        else:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": seq.finish_reason,
                      "stop_reason": seq.stop_reason}
            kind = "text_completion"
        return dumps({**self.head, "object": kind, "choices": [choice], "usage": self.usage(seq)})
