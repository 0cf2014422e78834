"""`stop` strings as vLLM applies them: text ends before the stop string, its token still counts."""

import json

from gpufleet_simulator.engine import Sequence, cut_at_stop
from gpufleet_simulator.tokenizer import count_tokens
from sim_support import sse_events

WORDS = [" the", " model", " serves", " tokens", "."]


def sequence() -> Sequence:
    return Sequence("r", ["p"], list(WORDS), "length")


def test_a_stop_string_across_tokens_clips_every_token_it_touches():
    seq = sequence()
    cut_at_stop(seq, ["l serv"])
    assert seq.output == [" the", " mode", ""]
    assert (seq.finish_reason, seq.stop_reason, seq.max_tokens) == ("stop", "l serv", 3)


def test_the_first_stop_string_of_the_list_wins_once_a_token_completes_both():
    seq = sequence()
    cut_at_stop(seq, ["ves", "serves"])
    assert (seq.stop_reason, "".join(seq.output)) == ("ves", " the model ser")


def test_the_earliest_token_to_complete_a_stop_string_ends_the_output():
    seq = sequence()
    cut_at_stop(seq, ["serves", "the m"])
    assert (seq.stop_reason, seq.output) == ("the m", [" ", ""])


def test_no_stop_string_found_leaves_the_output_alone():
    seq = sequence()
    cut_at_stop(seq, ["absent", "served"])
    assert (seq.output, seq.finish_reason, seq.stop_reason) == (WORDS, "length", None)


def test_completion_stops_before_the_stop_string(fast_server):
    # the filler puts a full stop at every ninth token, so "." ends the text after eight words
    request = {"prompt": "Hello", "max_tokens": 20, "stop": "."}
    with fast_server.client() as client:
        body = client.post("/v1/completions", json=request).json()
    choice = body["choices"][0]
    assert (choice["finish_reason"], choice["stop_reason"]) == ("stop", ".")
    assert "." not in choice["text"] and count_tokens(choice["text"]) == 8
    assert body["usage"]["completion_tokens"] == 9


def test_chat_stream_stops_before_the_stop_string(fast_server):
    request = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 20, "stop": [",", "."],
               "stream": True, "stream_options": {"include_usage": True}}
    with fast_server.client() as client:
        events = sse_events(client.post("/v1/chat/completions", json=request).text)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    content = [chunk["choices"][0] for chunk in chunks if chunk["choices"]]
    text = "".join(choice["delta"]["content"] for choice in content)
    assert "." not in text and count_tokens(text) == 8
    assert (content[-1]["finish_reason"], content[-1]["stop_reason"]) == ("stop", ".")
    assert chunks[-1]["usage"]["completion_tokens"] == 9
