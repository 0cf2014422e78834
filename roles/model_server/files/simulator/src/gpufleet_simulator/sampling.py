"""Sampling fields of a request, typed and checked the way vLLM does it.

Types: pydantic in lax mode, as vLLM's FastAPI request models (vllm/entrypoints/openai/protocol.py), so "0.5"
is a temperature but "hot" is not; a type error is answered like vLLM's validation_exception_handler
(type "Bad Request", param null). Values: the checks and messages of vLLM's SamplingParams._verify_args
(vllm/sampling_params.py), answered like create_error_response (type "BadRequestError", param as
VLLMValidationError names it).
"""

from __future__ import annotations

import math
from http import HTTPStatus

from pydantic import BaseModel, ConfigDict, ValidationError

from .errors import ApiError

_SAMPLING_EPS = 1e-5  # vllm/sampling_params.py: below it, temperature means greedy sampling


class StreamOptions(BaseModel):
    include_usage: bool | None = True
    continuous_usage_stats: bool | None = False


class SamplingFields(BaseModel):
    model_config = ConfigDict(extra="allow")  # vLLM accepts unknown fields (and logs them)

    model: str | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    min_tokens: int = 0
    n: int | None = 1
    temperature: float | None = None
    top_p: float | None = None
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    echo: bool | None = False
    logprobs: bool | int | None = None  # an int for completions, a bool (with top_logprobs) for chat
    top_logprobs: int | None = None
    response_format: dict | None = None


def reject_unsupported(fields: SamplingFields) -> None:
    """vLLM implements these; the simulator cannot, and answering without them would mislead the client."""
    if fields.echo:
        raise _invalid_unsupported("echo")
    if fields.logprobs not in (None, False) or fields.top_logprobs:
        raise _invalid_unsupported("logprobs")
    if fields.response_format and fields.response_format.get("type", "text") != "text":
        raise _invalid_unsupported("response_format")


def _invalid_unsupported(param: str) -> ApiError:
    return ApiError(400, f"'{param}' is not supported by the gpufleet simulator.", "BadRequestError", param)


def invalid_body(exc: ValidationError) -> ApiError:
    """As vLLM's validation_exception_handler answers a request model that does not validate."""
    message = f"{exc} {exc.errors(include_url=False, include_context=False)}"
    return ApiError(400, message, HTTPStatus.BAD_REQUEST.phrase)


def parse_fields(body: dict) -> SamplingFields:
    try:
        return SamplingFields.model_validate(body)
    except ValidationError as exc:
        raise invalid_body(exc) from None


def _invalid(message: str, param: str | None = None, value: object = None) -> ApiError:
    """VLLMValidationError (vllm/exceptions.py): its str() appends the parameter and value it names."""
    if param is not None:
        message += f" (parameter={param}, value={value})"
    return ApiError(400, message, "BadRequestError", param)


def verify(fields: SamplingFields, max_tokens: int | None) -> None:
    """vLLM's SamplingParams._verify_args for the fields the simulator reads, in vLLM's order."""
    n = 1 if fields.n is None else fields.n
    if n < 1:
        raise _invalid(f"n must be at least 1, got {n}.")
    temperature = fields.temperature
    if temperature is not None:
        if not math.isfinite(temperature):
            raise _invalid(f"temperature must be a finite number, got {temperature}.", "temperature", temperature)
        if temperature < 0.0:
            raise _invalid(f"temperature must be non-negative, got {temperature}.", "temperature", temperature)
        if temperature > 2.0:
            raise _invalid(f"temperature must be in [0, 2], got {temperature}.", "temperature", temperature)
    if fields.top_p is not None and not 0.0 < fields.top_p <= 1.0:
        raise _invalid(f"top_p must be in (0, 1], got {fields.top_p}.", "top_p", fields.top_p)
    if max_tokens is not None and max_tokens < 1:
        raise _invalid(f"max_tokens must be at least 1, got {max_tokens}.", "max_tokens", max_tokens)
    if fields.min_tokens < 0:
        raise _invalid(f"min_tokens must be greater than or equal to 0, got {fields.min_tokens}.")
    if max_tokens is not None and fields.min_tokens > max_tokens:
        raise _invalid(f"min_tokens must be less than or equal to max_tokens={max_tokens}, "
                       f"got {fields.min_tokens}.")
    if any(not stop for stop in stop_strings(fields)):
        raise _invalid("stop cannot contain an empty string.")
    if temperature is not None and temperature < _SAMPLING_EPS and n > 1:  # SamplingParams._verify_greedy_sampling
        raise _invalid(f"n must be 1 when using greedy sampling, got {n}.")


def stop_strings(fields: SamplingFields) -> list[str]:
    if fields.stop is None:
        return []
    return [fields.stop] if isinstance(fields.stop, str) else list(fields.stop)
