"""Options the simulator cannot honour are refused, never ignored; `seed` makes the text reproducible."""

import pytest

PROMPT = {"prompt": "Hello world", "max_tokens": 12}
CHAT = {"messages": [{"role": "user", "content": "Hello world"}], "max_tokens": 12}


@pytest.mark.parametrize(("path", "base", "fields", "param"), [
    ("/v1/completions", PROMPT, {"echo": True}, "echo"),
    ("/v1/completions", PROMPT, {"logprobs": 2}, "logprobs"),
    ("/v1/chat/completions", CHAT, {"logprobs": True, "top_logprobs": 3}, "logprobs"),
    ("/v1/chat/completions", CHAT, {"response_format": {"type": "json_object"}}, "response_format"),
])
def test_unsupported_options_are_refused_with_their_param(fast_server, path, base, fields, param):
    with fast_server.client() as client:
        response = client.post(path, json={**base, **fields})
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["type"], error["param"], error["code"]) == ("BadRequestError", param, 400)


def test_their_off_values_are_accepted(fast_server):
    off = {"echo": False, "logprobs": None, "response_format": {"type": "text"}}
    with fast_server.client() as client:
        assert client.post("/v1/completions", json={**PROMPT, **off}).status_code == 200
        assert client.post("/v1/chat/completions", json={**CHAT, "logprobs": False}).status_code == 200


def test_a_seed_repeats_the_text_and_another_seed_changes_it(fast_server):
    def text(seed):
        body = client.post("/v1/completions", json={**PROMPT, "seed": seed}).json()
        return body["choices"][0]["text"]

    with fast_server.client() as client:
        first, again, other = text(7), text(7), text(8)
        unseeded = {client.post("/v1/completions", json=PROMPT).json()["choices"][0]["text"] for _ in range(3)}
    assert first == again != other
    assert len(unseeded) > 1
