"""A local Hugging Face tokenizer that splits text exactly as the simulator's tokenize() does, for the peer client.

A client the project did not write counts output tokens with a Hugging Face tokenizer. Offline there is none to
download, and a real model's would count the simulator's text differently; this one is built here, from nothing
but the `tokenizers` package: a word-level model behind a pre-tokenizer on the simulator's own pattern
(`\\w+|[^\\w\\s]`, roles/model_server/files/simulator/src/gpufleet_simulator/tokenizer.py).

Python's `\\w` and `\\s` are not the Oniguruma ones that `tokenizers` runs (combining marks are word characters
there, ASCII separators 0x1c-0x1f are not whitespace), so the pattern spells out, as ranges of code points, the
characters Python's own `re` calls `\\w` and `\\s`: the split then matches on every code point, not only on ASCII.
"""

from __future__ import annotations

import functools
import json
import re
import sys
from pathlib import Path

from . import workload

# The word every unknown word becomes: itself one token for the simulator, so a prompt the peer client builds
# by decoding ids ("unk unk delta ...") is as many tokens for the simulator as the client meant.
UNKNOWN = "unk"
# The name the peer client asks for, and the cache's snapshot of it (a hub cache keys snapshots by commit; this
# one never came from a hub, so any fixed 40 hex digits do).
REPO_ID = "gpufleet/simulator-tokenizer"
SNAPSHOT = "0" * 40


def _ranges(pattern: str) -> str:
    """An Oniguruma character-class body of every code point that Python's re matches with pattern."""
    match = re.compile(pattern).fullmatch
    spans, start = [], None
    for code in range(sys.maxunicode + 2):
        inside = code <= sys.maxunicode and match(chr(code)) is not None
        if inside and start is None:
            start = code
        elif not inside and start is not None:
            spans.append(f"\\x{{{start:x}}}" if start == code - 1 else f"\\x{{{start:x}}}-\\x{{{code - 1:x}}}")
            start = None
    return "".join(spans)


@functools.cache
def split_pattern() -> str:
    """The simulator's `\\w+|[^\\w\\s]` with Python's classes written out."""
    word, space = _ranges(r"\w"), _ranges(r"\s")
    return f"[{word}]+|[^{word}{space}]"


def build(directory: Path) -> Path:
    """Write tokenizer.json and tokenizer_config.json into directory (what AutoTokenizer.from_pretrained reads)."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers

    vocabulary = {UNKNOWN: 0}
    for word in workload.VOCABULARY:
        vocabulary.setdefault(word, len(vocabulary))
    tokenizer = Tokenizer(models.WordLevel(vocabulary, unk_token=UNKNOWN))
    # invert: the pattern matches the tokens, and what lies between them (whitespace) is removed
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex(split_pattern()), behavior="removed", invert=True)
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(directory / "tokenizer.json"))
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "unk_token": UNKNOWN, "model_max_length": 1_000_000}
    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=1) + "\n")
    return directory


def build_hub_cache(hf_home: Path) -> str:
    """The tokenizer as a Hugging Face cache holds a downloaded repo; returns the repo id to name it by.

    aiperf 0.13.0 loads a tokenizer under HF_HUB_OFFLINE=1 only from the cache (a local path goes to
    snapshot_download, which rejects it), and without HF_HUB_OFFLINE it may ask the hub about the name; so the
    bench runs it offline with HF_HOME=hf_home, where this cache is the one place the name resolves.
    """
    owner, name = REPO_ID.split("/")
    repo = hf_home / "hub" / f"models--{owner}--{name}"
    build(repo / "snapshots" / SNAPSHOT)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(SNAPSHOT)
    return REPO_ID
