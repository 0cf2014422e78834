"""Simulator settings: one dataclass that defines every knob, its env var, CLI flag, default and check."""

from __future__ import annotations

import argparse
import dataclasses
import math
import socket
from collections.abc import Callable, Mapping
from typing import Any

ENV_PREFIX = "GPUFLEET_SIM_"

# name -> (HTTP status, OpenAI error type, message); modelled on llm-d's failure types
FAILURE_TYPES: dict[str, tuple[int, str, str]] = {
    "rate_limit": (429, "RateLimitError", "Rate limit reached for the served model, please retry."),
    "invalid_api_key": (401, "AuthenticationError", "Incorrect API key provided."),
    "context_length": (400, "BadRequestError", "This model's maximum context length was exceeded."),
    "server_error": (503, "ServiceUnavailableError", "The server is overloaded or not ready yet."),
    "invalid_request": (400, "BadRequestError", "Invalid request: missing required parameter."),
    "model_not_found": (404, "NotFoundError", "The model does not exist."),
}


class ConfigError(ValueError):
    """A setting has an invalid value; the message names the variable."""


def _number(kind: type, minimum: float | None = None, maximum: float | None = None) -> Callable[[str], Any]:
    def parse(raw: str) -> Any:
        try:
            value = kind(raw)
        except ValueError:
            raise ValueError(f"must be {'an integer' if kind is int else 'a number'}") from None
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        if minimum is not None and value < minimum:
            raise ValueError(f"must be >= {minimum}")
        if maximum is not None and value > maximum:
            raise ValueError(f"must be <= {maximum}")
        return value

    return parse


def _name(raw: str) -> str:
    if not raw.strip() or any(ch.isspace() for ch in raw):
        raise ValueError("must be a non-empty string without whitespace")
    return raw


def _optional_int(raw: str) -> int | None:
    return None if raw == "" else _number(int)(raw)


def _profile(raw: str) -> str:
    from .profiles import PROFILES  # profiles import batching, which needs nothing of config

    if raw not in PROFILES:
        raise ValueError(f"unknown profile {raw!r}; known: {', '.join(sorted(PROFILES))}")
    return raw


def _failure_types(raw: str) -> tuple[str, ...]:
    names = tuple(item.strip() for item in raw.split(",") if item.strip())
    if not names:
        raise ValueError("must list at least one failure type")
    for name in names:
        if name.isdigit() and 400 <= int(name) <= 599:
            continue
        if name not in FAILURE_TYPES:
            raise ValueError(f"unknown failure type {name!r}; use HTTP codes 400-599 or {', '.join(FAILURE_TYPES)}")
    return names


def _knob(default: Any, help_text: str, parse: Callable[[str], Any], *, factory: Callable[[], Any] | None = None):
    # The field is for the dataclass body that calls _knob(); pylint checks only where field() is called.
    # pylint: disable=invalid-field-call
    metadata = {"help": help_text, "parse": parse}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass(frozen=True)
class SimConfig:
    model: str = _knob("simulated-llm", "served model name", _name)
    instance_id: str = _knob(None, "instance id: x-gpufleet-instance header and gpufleet_simulator_info", _name,
                             factory=socket.gethostname)
    startup_delay_s: float = _knob(0.0, "seconds /health answers 503 before the model counts as loaded",
                                   _number(float, 0))
    ttft_ms: float = _knob(50.0, "time to first token in ms (scheduling + first decode step)", _number(float, 0))
    ttft_stddev_ms: float = _knob(0.0, "standard deviation of the time to first token in ms", _number(float, 0))
    prefill_ms_per_token: float = _knob(0.1, "prefill time per uncached prompt token in ms, added to the TTFT",
                                        _number(float, 0))
    prefill_stddev_ms_per_token: float = _knob(0.0, "standard deviation of the prefill time per token in ms",
                                               _number(float, 0))
    itl_ms: float = _knob(20.0, "inter-token latency in ms", _number(float, 0))
    itl_stddev_ms: float = _knob(0.0, "standard deviation of the inter-token latency in ms", _number(float, 0))
    output_tokens: int = _knob(128, "output length when the request sets no max_tokens", _number(int, 1))
    max_model_len: int = _knob(4096, "max prompt + output tokens per request (beyond it: HTTP 400)",
                               _number(int, 2))
    max_num_seqs: int = _knob(256, "max concurrently running sequences; more requests wait in a FIFO queue",
                              _number(int, 1))
    max_waiting: int = _knob(0, "max waiting requests, beyond it HTTP 503 (0 = unbounded)", _number(int, 0))
    time_factor_under_load: float = _knob(1.0, "latency multiplier reached at max-num-seqs running sequences",
                                          _number(float, 1))
    failure_rate: float = _knob(0.0, "fraction of requests (0..1) answered with an injected failure",
                                _number(float, 0, 1))
    failure_types: tuple[str, ...] = _knob(("server_error",), "comma-separated injected failures: HTTP codes "
                                           f"400-599 or {', '.join(FAILURE_TYPES)}", _failure_types)
    seed: int | None = _knob(None, "random seed for repeatable latencies, failures and text (unset: new each start)",
                             _optional_int)
    prefix_cache_blocks: int = _knob(0, "prefix cache size in blocks of 16 tokens (0 = off)", _number(int, 0))
    profile: str = _knob("", "GPU profile (profiles.py): continuous batching with that GPU's step times and KV cache, "
                         "in place of the fixed ttft/itl/prefill/time-factor latencies (empty = fixed latencies)",
                         _profile)
    kv_cache_blocks: int = _knob(0, "with a profile: KV cache size in blocks of 16 tokens, also the prefix cache "
                                 "(0 = the profile's)", _number(int, 0))
    max_num_batched_tokens: int = _knob(0, "with a profile: tokens per engine step, the chunked-prefill budget "
                                        "(0 = the profile's, vLLM's default on that GPU)", _number(int, 0))
    request_log: str = _knob("", "file to append '<unix time> <request id>' to for every generation request "
                             "accepted, written at once so a killed server leaves a complete record (empty = off)", str)

    def __post_init__(self) -> None:
        if self.profile and self.prefix_cache_blocks:
            raise ConfigError(f"{ENV_PREFIX}PREFIX_CACHE_BLOCKS: a profile's KV cache is its prefix cache, as in "
                              f"vLLM; size it with {ENV_PREFIX}KV_CACHE_BLOCKS")
        for name in ("kv_cache_blocks", "max_num_batched_tokens"):
            if not self.profile and getattr(self, name):
                raise ConfigError(f"{ENV_PREFIX}{name.upper()}: only a profile's batching engine uses it; "
                                  f"set {ENV_PREFIX}PROFILE too")

    @classmethod
    def knobs(cls) -> tuple[dataclasses.Field, ...]:
        return dataclasses.fields(cls)

    @classmethod
    def from_env(cls, environ: Mapping[str, str], overrides: Mapping[str, str | None] | None = None) -> SimConfig:
        """Build from GPUFLEET_SIM_* variables; overrides (field -> raw CLI value) win. Empty values mean default."""
        known = {env_name(knob) for knob in cls.knobs()}
        unknown = sorted(key for key in environ if key.startswith(ENV_PREFIX) and key not in known)
        if unknown:
            raise ConfigError(f"unknown variable(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        values = {}
        for knob in cls.knobs():
            raw, source = environ.get(env_name(knob)), env_name(knob)
            override = (overrides or {}).get(knob.name)
            if override is not None:
                raw, source = override, f"{flag_name(knob)} ({env_name(knob)})"
            if raw is None or raw == "":
                continue
            try:
                values[knob.name] = knob.metadata["parse"](raw)
            except ValueError as exc:
                raise ConfigError(f"{source}: {exc}, got {raw!r}") from None
        return cls(**values)


def env_name(knob: dataclasses.Field) -> str:
    return ENV_PREFIX + knob.name.upper()


def flag_name(knob: dataclasses.Field) -> str:
    return "--" + knob.name.replace("_", "-")


def default_text(knob: dataclasses.Field) -> str:
    if knob.default_factory is not dataclasses.MISSING:
        return "hostname"
    if isinstance(knob.default, tuple):
        return ",".join(knob.default)
    return "unset" if knob.default is None else str(knob.default)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One --flag per knob; values stay raw strings so env and CLI share one parser and one error message."""
    for knob in SimConfig.knobs():
        parser.add_argument(flag_name(knob), dest=knob.name, metavar="VALUE", default=None,
                            help=f"{knob.metadata['help']} [env {env_name(knob)}, default {default_text(knob)}]")
