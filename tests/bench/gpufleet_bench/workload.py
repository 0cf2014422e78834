"""What each request asks for: prompt, output length and session, drawn from a seed."""

from __future__ import annotations

import dataclasses
import random

# one token per word for the simulator's tokenizer; close to one per word for real ones
VOCABULARY = (
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet", "kilo", "lima",
    "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango", "uniform", "victor", "whiskey",
    "xray", "yankee", "zulu", "cluster", "node", "token", "batch", "cache", "prefix", "region", "server",
)


@dataclasses.dataclass(frozen=True)
class Request:
    prompt: str
    max_tokens: int
    session: str | None = None


@dataclasses.dataclass(frozen=True)
class Conversation:
    """A multi-turn chat: a long shared context, then user turns; replies are fixed stand-ins of the answer length."""

    session: str
    context: str
    turns: tuple[str, ...]
    replies: tuple[str, ...]


def words(rng: random.Random, count: int) -> str:
    return " ".join(rng.choices(VOCABULARY, k=count))


def parse_mix(text: str) -> list[tuple[int, float]]:
    """'16:0.8,512:0.2' -> [(16, 0.8), (512, 0.2)]: output lengths and their weights."""
    mix = []
    for item in text.split(","):
        tokens, sep, weight = item.strip().partition(":")
        try:
            pair = (int(tokens), float(weight) if sep else 1.0)
        except ValueError:
            raise ValueError(f"length mix item {item!r} must be TOKENS:WEIGHT") from None
        if pair[0] < 1 or not pair[1] > 0:
            raise ValueError(f"length mix item {item!r} needs TOKENS >= 1 and a positive WEIGHT")
        mix.append(pair)
    if not mix:
        raise ValueError("the length mix is empty")
    return mix


def mean_tokens(mix: list[tuple[int, float]]) -> float:
    total = sum(weight for _, weight in mix)
    return sum(tokens * weight for tokens, weight in mix) / total


def requests(count: int, mix: list[tuple[int, float]], prompt_words: int, seed: int | None) -> list[Request]:
    """count requests whose output lengths follow the mix; prompts differ so no prefix cache helps."""
    rng = random.Random(seed)
    lengths = rng.choices([tokens for tokens, _ in mix], weights=[weight for _, weight in mix], k=count)
    return [Request(f"request {index}: {words(rng, prompt_words)}", max_tokens) for index, max_tokens in
            enumerate(lengths)]


def conversations(count: int, turns: int, *, context_words: int, turn_words: int, reply_words: int,
                  seed: int | None, prefix: str = "session") -> list[Conversation]:
    rng = random.Random(seed)
    result = []
    for index in range(count):
        result.append(Conversation(
            session=f"{prefix}-{index}",
            context=f"conversation {index}: {words(rng, context_words)}",
            turns=tuple(words(rng, turn_words) for _ in range(turns)),
            replies=tuple(words(rng, reply_words) for _ in range(turns)),
        ))
    return result
