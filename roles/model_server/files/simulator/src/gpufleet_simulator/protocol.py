"""OpenAI/vLLM request parsing and response bodies (same JSON shapes as vLLM's OpenAI server)."""

from __future__ import annotations

import dataclasses
import json
import time
from http import HTTPStatus
from typing import Any

from pydantic import TypeAdapter, ValidationError

from .engine import Sequence
from .errors import ApiError
from .sampling import invalid_body, parse_fields, reject_unsupported, stop_strings, verify
from .tokenizer import Vocabulary, chat_prompt, tokenize

DONE = b"data: [DONE]\n\n"
_MARK = "\x00token\x00"


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


@dataclasses.dataclass
class GenerationRequest:
    chat: bool
    prompts: list[list[str]]  # one per prompt of a batch; chat requests have one
    n: int  # choices per prompt
    max_tokens: int | None
    stream: bool
    include_usage: bool
    stop: list[str]
    seed: int | None

    @property
    def num_choices(self) -> int:
        return self.n * len(self.prompts)


# vLLM's CompletionRequest.prompt (vllm/entrypoints/openai/completion/protocol.py), same union, same order
_PROMPT = TypeAdapter(list[int] | list[list[int]] | str | list[str] | None)


def _common(body: dict, served_model: str, chat: bool, prompts: list[list[str]]) -> GenerationRequest:
    fields = parse_fields(body)
    model = fields.model or served_model
    if model != served_model:
        raise ApiError(404, f"The model `{model}` does not exist.", "NotFoundError", "model")
    max_tokens = fields.max_tokens
    if chat and fields.max_completion_tokens is not None:
        max_tokens = fields.max_completion_tokens
    verify(fields, max_tokens)
    reject_unsupported(fields)
    # vLLM: include_usage = request.stream_options.include_usage if request.stream_options else False
    include_usage = bool(fields.stream_options and fields.stream_options.include_usage)
    return GenerationRequest(chat, prompts, 1 if fields.n is None else fields.n, max_tokens, bool(fields.stream),
                             include_usage, stop_strings(fields), fields.seed)


def parse_prompts(raw: Any, vocabulary: Vocabulary | None = None) -> list[list[str]]:
    """A completion's prompt as vLLM reads it: a string, token ids, or a batch of either."""
    if isinstance(raw, str) and raw:
        return [tokenize(raw)]  # the common case, without the union's cost
    try:
        prompt = _PROMPT.validate_python(raw)
    except ValidationError as exc:
        raise invalid_body(exc) from None
    if prompt is None or prompt == "":
        # CompletionRequest.validate_prompt_and_prompt_embeds raises this in a model validator: a body error
        raise ApiError(400, "Either prompt or prompt_embeds must be provided and non-empty.",
                       HTTPStatus.BAD_REQUEST.phrase)
    if isinstance(prompt, str) or (prompt and isinstance(prompt[0], int)):
        prompt = [prompt]
    prompts = []
    for item in prompt:
        if isinstance(item, str):
            prompts.append(tokenize(item))
        else:
            prompts.append(vocabulary.prompt_tokens(item) if vocabulary else [str(t) for t in item])
    if not prompts or not all(prompts):
        raise ApiError(400, "The decoder prompt cannot be empty.", param="prompt")
    return prompts


def parse_completion(body: dict, served_model: str, vocabulary: Vocabulary | None = None) -> GenerationRequest:
    return _common(body, served_model, False, parse_prompts(body.get("prompt"), vocabulary))


def _text_of(content: Any) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    raise ApiError(400, "Message 'content' must be a string or a list of content parts.", param="messages")


def render_messages(messages: Any) -> list[dict]:
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "'messages' must be a non-empty list.", param="messages")
    rendered = []
    for message in messages:
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise ApiError(400, "Every message needs a string 'role'.", param="messages")
        rendered.append({"role": message["role"], "content": _text_of(message.get("content"))})
    return rendered


def parse_chat(body: dict, served_model: str, vocabulary: Vocabulary | None = None) -> GenerationRequest:
    prompt = tokenize(chat_prompt(render_messages(body.get("messages"))))
    return _common(body, served_model, True, [prompt])


class Responder:
    """Builds the bodies for one request; streamed token chunks reuse a pre-serialised template per choice.

    Choices are numbered as vLLM numbers them: choice j of prompt i of a batch is index i * n + j
    (completion_stream_generator and request_output_to_completion_response in
    vllm/entrypoints/openai/completion/serving.py); usage counts each prompt once and every choice's tokens.
    """

    def __init__(self, request: GenerationRequest, request_id: str, model: str, prefix_cache: bool) -> None:
        self.chat = request.chat
        self.prefix_cache = prefix_cache
        self.prompt_tokens = sum(len(prompt) for prompt in request.prompts)
        self.head = {
            "id": ("chatcmpl-" if request.chat else "cmpl-") + request_id,
            "object": "chat.completion.chunk" if request.chat else "text_completion",
            "created": int(time.time()),
            "model": model,
        }
        self._templates: dict[int, tuple[bytes, bytes]] = {}

    def _template(self, index: int) -> tuple[bytes, bytes]:
        template = self._templates.get(index)
        if template is None:
            before, after = dumps(self._chunk(_MARK, index, None)).split(json.dumps(_MARK).encode())
            template = self._templates[index] = (b"data: " + before, after + b"\n\n")
        return template

    def _chunk(self, text: str, index: int, finish_reason: str | None, stop_reason: str | None = None) -> dict:
        if self.chat:
            choice = {"index": index, "delta": {"content": text}, "logprobs": None, "finish_reason": finish_reason}
        else:
            choice = {"index": index, "text": text, "logprobs": None, "finish_reason": finish_reason}
        choice["stop_reason"] = stop_reason
        return {**self.head, "choices": [choice]}

    def usage(self, seqs: list[Sequence], drop_none: bool = False) -> dict:
        completion = sum(seq.generated for seq in seqs)
        usage = {"prompt_tokens": self.prompt_tokens, "total_tokens": self.prompt_tokens + completion,
                 "completion_tokens": completion, "prompt_tokens_details": None}
        if self.prefix_cache:
            usage["prompt_tokens_details"] = {"cached_tokens": seqs[0].cached_tokens}
        elif drop_none:  # the streamed usage chunk is dumped with exclude_none=True
            del usage["prompt_tokens_details"]
        return usage

    def role_chunks(self, count: int) -> bytes:
        """vLLM's first chat chunk for each choice, sent with the first output: the role, empty content."""
        chunks = []
        for index in range(count):
            choice = {"index": index, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                      "finish_reason": None}
            chunks.append(b"data: " + dumps({**self.head, "choices": [choice]}) + b"\n\n")
        return b"".join(chunks)

    def token_chunk(self, token: str, index: int = 0, finish_reason: str | None = None,
                    stop_reason: str | None = None) -> bytes:
        if finish_reason is not None:
            return b"data: " + dumps(self._chunk(token, index, finish_reason, stop_reason)) + b"\n\n"
        before, after = self._template(index)
        return before + json.dumps(token, ensure_ascii=False).encode() + after

    def usage_chunk(self, seqs: list[Sequence]) -> bytes:
        return b"data: " + dumps({**self.head, "choices": [], "usage": self.usage(seqs, drop_none=True)}) + b"\n\n"

    def full(self, texts: list[str], seqs: list[Sequence]) -> bytes:
        choices = []
        for index, (text, seq) in enumerate(zip(texts, seqs, strict=True)):
            if self.chat:
                choices.append({"index": index, "message": {"role": "assistant", "content": text, "tool_calls": []},
                                "logprobs": None, "finish_reason": seq.finish_reason, "stop_reason": seq.stop_reason})
            else:
                choices.append({"index": index, "text": text, "logprobs": None, "finish_reason": seq.finish_reason,
                                "stop_reason": seq.stop_reason})
        kind = "chat.completion" if self.chat else "text_completion"
        return dumps({**self.head, "object": kind, "choices": choices, "usage": self.usage(seqs)})
