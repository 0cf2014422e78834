"""The request log: one line per accepted generation request, complete even when the server is killed."""

import signal

import httpx
from sim_support import run_server


def _logged_ids(path):
    lines = path.read_text().splitlines()
    for line in lines:
        stamp, _ = line.split(" ")
        assert float(stamp) > 1e9  # unix time
    return [line.split(" ")[1] for line in lines]


def test_accepted_generations_are_logged_once_each_in_order(tmp_path):
    log = tmp_path / "requests.log"
    with run_server(tmp_path, ttft_ms=1, itl_ms=1, max_model_len=64, request_log=log) as server, \
            server.client() as client:
        streamed = {"prompt": "hello", "max_tokens": 3, "stream": True}
        assert client.post("/v1/completions", json=streamed, headers={"x-request-id": "first"}).status_code == 200
        chat = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}
        assert client.post("/v1/chat/completions", json=chat, headers={"x-request-id": "second"}).status_code == 200
        too_long = {"prompt": "hello", "max_tokens": 100}
        assert client.post("/v1/completions", json=too_long, headers={"x-request-id": "refused"}).status_code == 400
        assert client.get("/v1/models", headers={"x-request-id": "not-a-generation"}).status_code == 200
        anonymous = client.post("/v1/completions", json={"prompt": "x", "max_tokens": 1})
    assert _logged_ids(log) == ["first", "second", anonymous.headers["x-request-id"]]


def test_a_killed_server_leaves_the_requests_it_accepted_in_the_log(tmp_path):
    log = tmp_path / "requests.log"
    with run_server(tmp_path, ttft_ms=1, itl_ms=50, request_log=log) as server, server.client() as client:
        request = {"prompt": "hello", "max_tokens": 100, "stream": True}
        with client.stream("POST", "/v1/completions", json=request, headers={"x-request-id": "in-flight"}) as response:
            lines = response.iter_lines()
            next(lines)  # the stream is running
            server.process.send_signal(signal.SIGKILL)
            server.process.wait(timeout=10)
            try:
                body = "".join(lines)
            except httpx.HTTPError:
                body = ""
    assert "[DONE]" not in body
    assert _logged_ids(log) == ["in-flight"]
