"""OpenAI/vLLM API shapes over real HTTP against uvicorn."""

import json

import pytest
from gpufleet_simulator import __version__
from gpufleet_simulator.tokenizer import count_tokens
from sim_support import sse_events

CHAT = {"messages": [{"role": "user", "content": "Hello world"}]}


def test_models_lists_the_served_model(fast_server):
    with fast_server.client() as client:
        response = client.get("/v1/models")
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "list"
    assert [(m["id"], m["object"], m["owned_by"], m["max_model_len"]) for m in body["data"]] == [
        ("simulated-llm", "model", "vllm", 64)]


def test_completion_usage_counts_prompt_and_output_tokens(fast_server):
    with fast_server.client() as client:
        response = client.post("/v1/completions", json={"prompt": "Hello, world! How are you?", "max_tokens": 5})
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "text_completion" and body["id"].startswith("cmpl-")
    choice = body["choices"][0]
    assert choice["finish_reason"] == "length" and count_tokens(choice["text"]) == 5
    assert body["usage"] == {"prompt_tokens": 8, "completion_tokens": 5, "total_tokens": 13,
                             "prompt_tokens_details": None}


def test_chat_usage_counts_the_template_and_default_length_stops(fast_server):
    with fast_server.client() as client:
        response = client.post("/v1/chat/completions", json=CHAT)
    body = response.json()
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-")
    choice = body["choices"][0]
    assert choice["message"]["role"] == "assistant" and choice["finish_reason"] == "stop"
    assert count_tokens(choice["message"]["content"]) == 7
    assert body["usage"]["prompt_tokens"] == 12
    assert (body["usage"]["completion_tokens"], body["usage"]["total_tokens"]) == (7, 19)


def test_token_id_prompts_and_max_completion_tokens_are_accepted(fast_server):
    with fast_server.client() as client:
        completion = client.post("/v1/completions", json={"prompt": [1, 2, 3], "max_tokens": 2}).json()
        chat = client.post("/v1/chat/completions", json={**CHAT, "max_completion_tokens": 3}).json()
    assert completion["usage"]["prompt_tokens"] == 3
    assert chat["usage"]["completion_tokens"] == 3


def test_chat_stream_framing(fast_server):
    request = {**CHAT, "max_tokens": 6, "stream": True, "stream_options": {"include_usage": True}}
    with fast_server.client() as client:
        response = client.post("/v1/chat/completions", json=request)
    assert response.headers["content-type"].startswith("text/event-stream")
    assert "x-accel-buffering" not in response.headers
    events = sse_events(response.text)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    assert len({chunk["id"] for chunk in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    content = [chunk for chunk in chunks[1:] if chunk["choices"]]
    assert len(content) == 6
    assert [c["choices"][0]["finish_reason"] for c in content] == [None] * 5 + ["length"]
    assert all(count_tokens(c["choices"][0]["delta"]["content"]) == 1 for c in content)
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == 6 and chunks[-1]["usage"]["prompt_tokens"] == 12


def test_completion_stream_without_usage(fast_server):
    with fast_server.client() as client:
        response = client.post("/v1/completions", json={"prompt": "hi", "max_tokens": 4, "stream": True})
    events = sse_events(response.text)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    assert len(chunks) == 4 and all("usage" not in chunk for chunk in chunks)
    assert all(chunk["object"] == "text_completion" for chunk in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"


def test_request_ids_are_echoed_or_generated_and_instance_is_reported(fast_server):
    with fast_server.client() as client:
        echoed = client.post("/v1/completions", json={"prompt": "a", "max_tokens": 1},
                             headers={"x-request-id": "trace-42"})
        first = client.post("/v1/completions", json={"prompt": "a", "max_tokens": 1})
        second = client.get("/v1/models")
    assert echoed.headers["x-request-id"] == "trace-42" and echoed.json()["id"] == "cmpl-trace-42"
    assert first.headers["x-request-id"] != second.headers["x-request-id"]
    assert first.json()["id"] == "cmpl-" + first.headers["x-request-id"]
    assert {r.headers["x-gpufleet-instance"] for r in (echoed, first, second)} == {"sim-a"}


@pytest.mark.parametrize("case", [
    ("GET", "/v2/nothing", None, 404, "NotFoundError"),
    ("GET", "/v1/completions", None, 405, "MethodNotAllowedError"),
    ("POST", "/v1/models", None, 405, "MethodNotAllowedError"),
    ("POST", "/v1/completions", b"{not json", 400, "Bad Request"),
    ("POST", "/v1/completions", b"[1, 2]", 400, "Bad Request"),
    # no prompt: CompletionRequest.validate_prompt_and_prompt_embeds, a model validator, so a body error
    ("POST", "/v1/completions", {"max_tokens": 3}, 400, "Bad Request"),
    ("POST", "/v1/completions", {"prompt": [], "max_tokens": 3}, 400, "BadRequestError"),
    ("POST", "/v1/completions", {"prompt": "a", "max_tokens": 0}, 400, "BadRequestError"),
    ("POST", "/v1/completions", {"prompt": "a", "stream": "maybe"}, 400, "Bad Request"),
    ("POST", "/v1/chat/completions", {"messages": []}, 400, "BadRequestError"),
    ("POST", "/v1/chat/completions", {**CHAT, "model": "gpt-5"}, 404, "NotFoundError"),
])
def test_errors_use_vllms_error_shape(fast_server, case):
    method, path, payload, status, error_type = case
    with fast_server.client() as client:
        content = payload if isinstance(payload, bytes) else None
        response = client.request(method, path, content=content, json=None if content else payload)
    assert response.status_code == status
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["code"], error["type"]) == (status, error_type) and error["message"]
    assert response.headers["x-gpufleet-instance"] == "sim-a" and response.headers["x-request-id"]


def test_method_not_allowed_lists_the_allowed_method(fast_server):
    with fast_server.client() as client:
        assert client.delete("/v1/chat/completions").headers["allow"] == "POST"


def test_prompt_beyond_max_model_len_is_rejected(fast_server):
    with fast_server.client() as client:
        too_long = client.post("/v1/completions", json={"prompt": "word " * 60, "max_tokens": 10})
        fits = client.post("/v1/completions", json={"prompt": "word " * 60})
        full = client.post("/v1/completions", json={"prompt": "word " * 64})
    assert too_long.status_code == 400
    assert "maximum context length is 64 tokens" in too_long.json()["error"]["message"]
    assert too_long.json()["error"]["param"] == "max_tokens"
    assert fits.status_code == 200
    assert fits.json()["usage"]["completion_tokens"] == 4 and fits.json()["choices"][0]["finish_reason"] == "length"
    assert full.status_code == 400


def test_ping_answers_like_health_and_version_has_vllms_shape(fast_server):
    with fast_server.client() as client:
        pings = [client.get("/ping"), client.post("/ping")]
        version = client.get("/version")
        wrong_method = client.delete("/ping")
    assert [(r.status_code, r.content) for r in pings] == [(200, b""), (200, b"")]
    assert version.status_code == 200 and version.json() == {"version": __version__}
    assert wrong_method.status_code == 405 and wrong_method.headers["allow"] == "GET, POST"
