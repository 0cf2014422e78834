"""Request validation as vLLM answers it: type errors from its request models, value errors from SamplingParams."""

import pytest

PROMPT = {"prompt": "Hello world", "max_tokens": 4}
CHAT = {"messages": [{"role": "user", "content": "Hello world"}], "max_tokens": 4}


@pytest.mark.parametrize(("path", "base", "field", "value"), [
    ("/v1/completions", PROMPT, "temperature", "hot"),
    ("/v1/completions", PROMPT, "max_tokens", "x"),
    ("/v1/completions", PROMPT, "max_tokens", 2.5),
    ("/v1/completions", PROMPT, "top_p", [1]),
    ("/v1/chat/completions", CHAT, "stop", 3),
    ("/v1/chat/completions", CHAT, "stream_options", {"include_usage": "often"}),
    ("/v1/chat/completions", CHAT, "seed", "lucky"),
])
def test_wrong_types_are_answered_like_vllms_validation_handler(fast_server, path, base, field, value):
    with fast_server.client() as client:
        response = client.post(path, json={**base, field: value})
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["type"], error["code"], error["param"]) == ("Bad Request", 400, None)
    assert field in error["message"]


@pytest.mark.parametrize("case", [
    ("/v1/completions", PROMPT, {"temperature": -0.5},
     "temperature must be non-negative, got -0.5. (parameter=temperature, value=-0.5)", "temperature"),
    ("/v1/completions", PROMPT, {"temperature": 2.5},
     "temperature must be in [0, 2], got 2.5. (parameter=temperature, value=2.5)", "temperature"),
    ("/v1/completions", PROMPT, {"top_p": 0},
     "top_p must be in (0, 1], got 0.0. (parameter=top_p, value=0.0)", "top_p"),
    ("/v1/completions", PROMPT, {"top_p": 1.5},
     "top_p must be in (0, 1], got 1.5. (parameter=top_p, value=1.5)", "top_p"),
    ("/v1/completions", PROMPT, {"max_tokens": -3},
     "max_tokens must be at least 1, got -3. (parameter=max_tokens, value=-3)", "max_tokens"),
    ("/v1/chat/completions", CHAT, {"max_completion_tokens": 0},
     "max_tokens must be at least 1, got 0. (parameter=max_tokens, value=0)", "max_tokens"),
    ("/v1/completions", PROMPT, {"min_tokens": 5},
     "min_tokens must be less than or equal to max_tokens=4, got 5.", None),
    ("/v1/completions", PROMPT, {"min_tokens": -1}, "min_tokens must be greater than or equal to 0, got -1.", None),
    ("/v1/completions", PROMPT, {"n": 0}, "n must be at least 1, got 0.", None),
    ("/v1/completions", PROMPT, {"n": 2, "temperature": 0}, "n must be 1 when using greedy sampling, got 2.", None),
    ("/v1/chat/completions", CHAT, {"stop": ["\n", ""]}, "stop cannot contain an empty string.", None),
])
def test_impossible_values_get_sampling_params_messages(fast_server, case):
    path, base, fields, message, param = case
    with fast_server.client() as client:
        response = client.post(path, json={**base, **fields})
    assert response.status_code == 400
    assert response.json()["error"] == {"message": message, "type": "BadRequestError", "param": param, "code": 400}


def test_values_pydantic_coerces_are_accepted_as_vllm_accepts_them(fast_server):
    lax = {**PROMPT, "temperature": "0.5", "max_tokens": "3", "top_p": 1, "stream": "false", "seed": 7.0}
    with fast_server.client() as client:
        response = client.post("/v1/completions", json=lax)
    assert response.status_code == 200
    assert response.json()["usage"]["completion_tokens"] == 3


def test_empty_stream_options_include_usage_as_vllms_default_does(fast_server):
    with fast_server.client() as client:
        response = client.post("/v1/completions", json={**PROMPT, "stream": True, "stream_options": {}})
    assert '"usage":{"prompt_tokens"' in response.text
