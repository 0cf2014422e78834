"""Deterministic stand-in tokenizer: one token per word and per punctuation character."""

from __future__ import annotations

import random
import re

_TOKEN = re.compile(r"\w+|[^\w\s]")

# generated text; each entry is exactly one token for tokenize() so usage counts can be re-checked by clients
_FILLER_WORDS = (
    "the", "model", "serves", "tokens", "from", "a", "simulated", "engine", "that", "answers", "every",
    "request", "with", "plausible", "text", "while", "it", "keeps", "time", "like", "real", "GPU", "fleet",
    "of", "and", "to", "in", "is", "for", "on", "as", "by", "this", "data", "result", "value", "system",
)
_PUNCTUATION = (".", ",")


def tokenize(text: str) -> list[str]:
    return _TOKEN.findall(text)


def count_tokens(text: str) -> int:
    return sum(1 for _match in _TOKEN.finditer(text))


def chat_prompt(messages: list[dict]) -> str:
    """Render messages with a fixed chat template so the template costs tokens, as in vLLM."""
    parts = [f"<|{message['role']}|>\n{message['content']}\n" for message in messages]
    parts.append("<|assistant|>\n")
    return "".join(parts)


def filler_tokens(rng: random.Random, count: int) -> list[str]:
    """Plausible output text: words with a leading space, a comma or full stop now and then."""
    words = rng.choices(_FILLER_WORDS, k=count)
    tokens = []
    for index, word in enumerate(words):
        if index % 9 == 8:
            tokens.append(_PUNCTUATION[index % 2])
        else:
            tokens.append(" " + word)
    return tokens
