"""The peer client (aiperf): its tokenizer splits as the simulator does and its export is read right (the live run
against a simulator is tests/bench/test_peer_live.py, which `make bench` runs first, with the peer venv)."""

import json
import math
import sys
from pathlib import Path

import pytest
from gpufleet_bench import fixtures, peer, peer_tokenizer, stats

sys.path.insert(0, str(fixtures.SIMULATOR_SRC))
from gpufleet_simulator import tokenizer as simulator_tokenizer

tokenizers = pytest.importorskip("tokenizers", reason="tokenizers is pinned in requirements.txt: make venv")

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "aiperf-0.13.0"

TEXTS = [
    "Hello, world! It's 3.14 -- isn't it?",
    "  leading\tand trailing\nwhitespace  ",
    "<|user|>\nrequest 7: alpha bravo zulu\n<|assistant|>\n",
    " the model serves tokens, from a simulated engine.",
    "naïve café, 中文字符 and snake_case_words_42",
    "combining a\u0301 marks, arabic ٣٤ digits, ① circled, \u00a0nbsp and \u2003em space",
    "separators\x1cbetween\x1dwords\x1e\x1f and\u200bzero width",
    "emoji 🙂🙂 and math ∑∫ and quotes «»“”",
]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tokenizers.Tokenizer:
    directory = peer_tokenizer.build(tmp_path_factory.mktemp("tokenizer"))
    assert json.loads((directory / "tokenizer_config.json").read_text())["tokenizer_class"] == "PreTrainedTokenizerFast"
    return tokenizers.Tokenizer.from_file(str(directory / "tokenizer.json"))


@pytest.mark.parametrize("text", TEXTS)
def test_the_built_tokenizer_splits_as_the_simulator(built, text):
    assert built.encode(text).tokens == [
        token if token in built.get_vocab() else peer_tokenizer.UNKNOWN for token in simulator_tokenizer.tokenize(text)]
    pieces = [piece for piece, _ in built.pre_tokenizer.pre_tokenize_str(text)]
    assert pieces == simulator_tokenizer.tokenize(text)


def test_every_code_point_between_words_counts_as_the_simulator_counts(built):
    # each character alone and between two words: a class mismatch (word, space, other) shows as a count mismatch
    texts = [f"a{chr(code)}b {chr(code)}" for code in range(sys.maxunicode + 1) if not 0xD800 <= code < 0xE000]
    counts = [len(encoding.ids) for encoding in built.encode_batch(texts)]
    wrong = [text for text, count in zip(texts, counts, strict=True) if count != simulator_tokenizer.count_tokens(text)]
    assert wrong == []


def test_decoded_ids_are_as_many_tokens_for_the_simulator(built):
    # the peer client builds prompts by decoding ids: unknown words come back as "unk", one token each
    ids = built.encode("Shall I compare thee to a summer's day? alpha bravo").ids
    assert simulator_tokenizer.count_tokens(built.decode(ids)) == len(ids)


def test_the_hub_cache_holds_the_snapshot_under_main(tmp_path):
    repo_id = peer_tokenizer.build_hub_cache(tmp_path)
    owner, name = repo_id.split("/")
    repo = tmp_path / "hub" / f"models--{owner}--{name}"
    assert (repo / "refs" / "main").read_text() == peer_tokenizer.SNAPSHOT
    assert (repo / "snapshots" / peer_tokenizer.SNAPSHOT / "tokenizer.json").is_file()


def test_the_export_is_read_per_gap():
    figures = peer.parse(FIXTURE)
    rows = [json.loads(line) for line in (FIXTURE / "profile_export.jsonl").read_text().splitlines()]
    ok = [row for row in rows if not row.get("error")]
    assert figures["requests"] == len(rows) and figures["failed"] == len(rows) - len(ok) > 0
    gaps = [gap for row in ok for gap in row["metrics"]["inter_chunk_latency"]["value"]]
    assert len(gaps) == sum(row["metrics"]["output_sequence_length"]["value"] - 1 for row in ok)
    assert figures["itl_p99"] == pytest.approx(stats.percentile(gaps, 99))
    # per gap, not aiperf's per-request mean: the gaps' p99 is above the largest per-request mean
    assert figures["itl_p99"] > max(row["metrics"]["inter_token_latency"]["value"] for row in ok)
    ttfts = [row["metrics"]["time_to_first_token"]["value"] for row in ok]
    assert figures["ttft_p50"] == pytest.approx(stats.percentile(ttfts, 50))
    assert 0 < figures["tok_s"] < math.inf


def test_the_command_asks_for_the_load_shape():
    closed = peer.command("http://127.0.0.1:1", peer.Load(64, [(128, 1.0)], concurrency=64), "t/k", Path("a"), "m")
    assert closed[closed.index("--osl") + 1] == "128" and closed[closed.index("--concurrency") + 1] == "64"
    poisson = peer.command("http://127.0.0.1:1", peer.Load(96, [(16, 0.8), (512, 0.2)], rate=16.1), "t/k",
                           Path("a"), "m")
    assert poisson[poisson.index("--seq-dist") + 1] == "32,16:80;32,512:20"
    assert poisson[poisson.index("--request-rate") + 1] == "16.1" and "--concurrency" not in poisson
