"""Deterministic stand-in tokenizer: one token per word and per punctuation character."""

from __future__ import annotations

import random
import re

_TOKEN = re.compile(r"\w+|[^\w\s]")
# the same tokens with the whitespace before each kept, so that ids turn back into the text (as BPE's "Ġword")
_SPACED_TOKEN = re.compile(r"\s*(?:\w+|[^\w\s])")

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


def chat_prompt(messages: list[dict], add_generation_prompt: bool = True) -> str:
    """Render messages with a fixed chat template so the template costs tokens, as in vLLM."""
    parts = [f"<|{message['role']}|>\n{message['content']}\n" for message in messages]
    if add_generation_prompt:
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


class Vocabulary:
    """Token ids for /tokenize and /detokenize: the simulator's own, not those of any real model.

    The generated tokens have fixed ids (the same on every instance); any other token gets the next free id
    the first time /tokenize sees it, so ids are stable for the life of one server and differ between servers.
    Only /tokenize adds entries, so the table grows with the distinct words sent there, never with generation.
    """

    def __init__(self) -> None:
        fixed = [*_PUNCTUATION, *(" " + word for word in _FILLER_WORDS)]
        self._ids: dict[str, int] = {token: index for index, token in enumerate(fixed)}
        self._tokens: list[str] = fixed

    def encode(self, text: str) -> tuple[list[int], list[str]]:
        tokens = _SPACED_TOKEN.findall(text)
        ids = []
        for token in tokens:
            token_id = self._ids.get(token)
            if token_id is None:
                token_id = self._ids[token] = len(self._tokens)
                self._tokens.append(token)
            ids.append(token_id)
        return ids, tokens

    def decode(self, ids: list[int]) -> str:
        return "".join(self.token(token_id) for token_id in ids)

    def token(self, token_id: int) -> str:
        if token_id >= len(self._tokens):
            raise KeyError(token_id)
        return self._tokens[token_id]

    def prompt_tokens(self, ids: list[int]) -> list[str]:
        """Generation prompts given as ids: known ids as their words (as tokenize() would split them)."""
        known = len(self._tokens)
        return [self._tokens[i].lstrip() if 0 <= i < known else str(i) for i in ids]
