"""The load balancer as a gateway, with the role's own template, real NGINX + njs and simulators on loopback:
keys, limits, routing by model, the endpoint allowlist, TLS with the openai client, and gixy on the result."""

import json
import shutil
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest
from bench_support import free_port
from gpufleet_bench import fixtures
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.skipif(not Path("/usr/lib/nginx/modules/ngx_http_js_module.so").exists(),
                                reason="needs nginx and its JavaScript module: `make host-packages` installs them")

INSTANT = {"ttft_ms": 0, "itl_ms": 0, "prefill_ms_per_token": 0, "output_tokens": 3}
KEY_ADMIN = "a" * 16 + "0123456789abcdef0123"
KEY_LIMITED = "b" * 16 + "0123456789abcdef0123"
KEY_SMALL = "c" * 16 + "0123456789abcdef0123"
KEYS = [{"name": "admin", "key": KEY_ADMIN},
        {"name": "limited", "key": KEY_LIMITED, "rate": 1, "burst": 1, "concurrency": 1},
        {"name": "small", "key": KEY_SMALL, "models": ["model-b"]}]


def _bearer(key):
    return {"Authorization": f"Bearer {key}"}


def _gpu_nodes(port_a, port_b):
    return {"gpu-a": {"gpufleet_region": "here", "gpu_count": 1, "gpu_model": "sim", "gpufleet_address": "127.0.0.1",
                      "model_server_base_port": port_a, "gpufleet_model": "model-a"},
            "gpu-b": {"gpufleet_region": "here", "gpu_count": 1, "gpu_model": "sim", "gpufleet_address": "127.0.0.1",
                      "model_server_base_port": port_b, "gpufleet_model": "model-b"}}


def _render(tmp_path, gpu_nodes, lb_port, **settings):
    return fixtures.render_lb_configs(tmp_path, gpu_nodes, {"lb": {"region": "here", "settings": {
        "nginx_lb_listen_address": "127.0.0.1", "nginx_lb_listen_port": lb_port, "nginx_lb_status_port": free_port(),
        "nginx_lb_plain_http_port": free_port(), "nginx_lb_pid_file": str(tmp_path / "lb.pid"),
        "nginx_lb_error_log": str(tmp_path / "error.log"), "nginx_lb_access_log": str(tmp_path / "access.log"),
        "nginx_lb_usage_log": str(tmp_path / "usage.log"), "nginx_lb_auth": True, "nginx_lb_api_keys": KEYS,
        **settings}}})["lb"]


class _Fleet:
    """Two simulators (model-a, model-b) behind one gateway."""

    def __init__(self, tmp_path, **settings):
        self.ports = {"model-a": free_port(), "model-b": free_port()}
        self.lb_port = free_port()
        self.conf = _render(tmp_path, _gpu_nodes(self.ports["model-a"], self.ports["model-b"]), self.lb_port,
                            **settings)
        self.tmp_path = tmp_path

    def __enter__(self):
        self._stack = [fixtures.simulators([self.ports["model-a"]], self.tmp_path, dict(INSTANT, model="model-a")),
                       fixtures.simulators([self.ports["model-b"]], self.tmp_path, dict(INSTANT, model="model-b")),
                       fixtures.nginx(self.conf, self.lb_port, self.tmp_path)]
        self.lb = [context.__enter__() for context in self._stack][-1]
        return self

    def __exit__(self, *exc):
        for context in reversed(self._stack):
            context.__exit__(*exc)

    def served(self, model):
        """Requests the simulator of ``model`` counts in its own metrics."""
        text = httpx.get(f"http://127.0.0.1:{self.ports[model]}/metrics", timeout=5).text
        return sum(sample.value for family in text_string_to_metric_families(text)
                   if family.name == "vllm:request_success" for sample in family.samples
                   if sample.name.endswith("_total"))


def _completion(client, model, key=KEY_ADMIN):
    return client.post("/v1/completions", json={"model": model, "prompt": "hi", "max_tokens": 2},
                       headers=_bearer(key) if key else {})


def test_a_key_is_required_and_only_its_hash_is_in_the_config(tmp_path):
    with _Fleet(tmp_path) as fleet, httpx.Client(base_url=fleet.lb.url, timeout=10) as client:
        missing, wrong = _completion(client, "model-a", key=None), _completion(client, "model-a", key="x" * 40)
        good = _completion(client, "model-a")
    for response in (missing, wrong):
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert response.json()["error"]["code"] == "invalid_api_key"
    assert good.status_code == 200 and good.json()["model"] == "model-a"
    conf = fleet.conf.read_text()
    for entry in KEYS:
        assert entry["key"] not in conf
        assert __import__("hashlib").sha256(entry["key"].encode()).hexdigest() in conf
    # The logs name the key, never hold it.
    logs = (tmp_path / "usage.log").read_text() + (tmp_path / "access.log").read_text()
    assert KEY_ADMIN not in logs and "key=admin model=model-a status=200" in logs
    assert "key=- model=- status=401" in logs


def test_requests_reach_only_their_models_instances_and_unknown_models_get_model_not_found(tmp_path):
    with _Fleet(tmp_path) as fleet, httpx.Client(base_url=fleet.lb.url, timeout=10) as client:
        before = {model: fleet.served(model) for model in fleet.ports}
        answers = [_completion(client, "model-a") for _ in range(7)]
        answers += [_completion(client, "model-b") for _ in range(5)]
        after = {model: fleet.served(model) for model in fleet.ports}
        unknown = _completion(client, "model-c")
        not_allowed = _completion(client, "model-a", key=KEY_SMALL)
        allowed = _completion(client, "model-b", key=KEY_SMALL)
        listed = client.get("/v1/models", headers=_bearer(KEY_SMALL)).json()
        listed_all = client.get("/v1/models", headers=_bearer(KEY_ADMIN)).json()
        no_model = client.post("/v1/completions", json={"prompt": "hi"}, headers=_bearer(KEY_ADMIN))
    assert [a.status_code for a in answers] == [200] * 12
    assert after["model-a"] - before["model-a"] == 7 and after["model-b"] - before["model-b"] == 5
    for response in (unknown, not_allowed):
        assert response.status_code == 404 and response.json()["error"]["code"] == "model_not_found"
    assert allowed.status_code == 200
    assert [m["id"] for m in listed["data"]] == ["model-b"]
    assert [m["id"] for m in listed_all["data"]] == ["model-a", "model-b"]
    assert no_model.status_code == 400 and no_model.json()["error"]["param"] == "model"
    # Nothing tells the client which instance answered (nginx_lb_debug_headers is off).
    assert not {"x-gpufleet-instance", "x-gpufleet-upstream"} & {h.lower() for h in answers[0].headers}


def test_a_key_over_its_limits_gets_429_with_retry_after_and_other_keys_do_not(tmp_path):
    with _Fleet(tmp_path) as fleet, httpx.Client(base_url=fleet.lb.url, timeout=10) as client:
        limited = [_completion(client, "model-a", key=KEY_LIMITED) for _ in range(6)]
        admin = [_completion(client, "model-a") for _ in range(6)]
    refused = [r for r in limited if r.status_code == 429]
    assert refused and len(refused) <= 5, [r.status_code for r in limited]  # rate 1/s with a burst of 1
    assert refused[0].headers["retry-after"] == "1"
    assert refused[0].json()["error"]["code"] == "rate_limit_exceeded"
    assert [r.status_code for r in admin] == [200] * 6
    assert "key=limited model=- status=429" in (tmp_path / "usage.log").read_text()


@pytest.mark.parametrize("path", ["/pause", "/sleep", "/reset_prefix_cache", "/collective_rpc", "/metrics",
                                  "/v1/load_lora_adapter", "/start_profile", "/stub_status"])
def test_only_the_inference_api_is_served(tmp_path, path):
    with _Fleet(tmp_path) as fleet, httpx.Client(base_url=fleet.lb.url, timeout=10) as client:
        response = client.post(path, headers=_bearer(KEY_ADMIN), json={})
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_the_openai_client_streams_through_tls_and_plain_http_redirects(tmp_path):
    ca = fixtures.tls_files(tmp_path / "tls")
    plain_port = free_port()
    with _Fleet(tmp_path, nginx_lb_tls=True, nginx_lb_tls_dir=str(tmp_path / "tls"),
                nginx_lb_plain_http_port=plain_port) as fleet:
        tls = ssl.create_default_context(cafile=str(ca))
        with httpx.Client(verify=tls, http2=False) as http:
            client = openai.OpenAI(base_url=f"https://127.0.0.1:{fleet.lb_port}/v1", api_key=KEY_ADMIN,
                                   http_client=http, max_retries=0)
            stream = client.chat.completions.create(model="model-b", messages=[{"role": "user", "content": "hi"}],
                                                    max_tokens=3, stream=True)
            chunks = list(stream)
            with pytest.raises(openai.AuthenticationError):
                openai.OpenAI(base_url=f"https://127.0.0.1:{fleet.lb_port}/v1", api_key="wrong" * 8,
                              http_client=http, max_retries=0).models.list()
            models = [m.id for m in client.models.list()]
        redirect = httpx.post(f"http://127.0.0.1:{plain_port}/v1/completions", json={}, follow_redirects=False)
    assert [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert chunks[0].model == "model-b"
    assert models == ["model-a", "model-b"]
    assert redirect.status_code == 308
    assert redirect.headers["location"] == f"https://127.0.0.1:{fleet.lb_port}/v1/completions"


def test_gixy_finds_nothing_in_the_rendered_gateway_config(tmp_path):
    ca = fixtures.tls_files(tmp_path / "tls")
    assert ca.exists()
    conf = _render(tmp_path, _gpu_nodes(free_port(), free_port()), free_port(), nginx_lb_tls=True,
                   nginx_lb_tls_dir=str(tmp_path / "tls"))
    gixy = Path(sys.executable).with_name("gixy")
    result = subprocess.run([str(gixy), "--format", "json", str(conf)], capture_output=True, text=True, timeout=120,
                            check=False)
    findings = json.loads(result.stdout or "[]")
    assert findings == [], json.dumps(findings, indent=1)
    assert shutil.which("nginx", path="/usr/sbin:/usr/bin") is not None


def _usage_lines(path, count, timeout_s=10):
    """The usage log once it holds ``count`` lines (NGINX writes a line when a request ends)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        lines = path.read_text().splitlines() if path.exists() else []
        if len(lines) >= count:
            return lines
        time.sleep(0.1)
    raise AssertionError(f"fewer than {count} usage lines within {timeout_s} s: {lines}")


def test_the_usage_log_tells_whole_streams_from_cut_ones(tmp_path):
    """NGINX logs a stream as the 200 it began with, however it ends; the usage log's stream= says whether its
    last event (data: [DONE]) passed: done, or cut when the model server died mid-way or the client left."""
    slow = dict(INSTANT, itl_ms=20, output_tokens=60)  # a 60-token stream takes about 1.2 s
    ports = {"model-a": free_port(), "model-b": free_port()}
    lb_port = free_port()
    conf = _render(tmp_path, _gpu_nodes(ports["model-a"], ports["model-b"]), lb_port)
    chat = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 60, "stream": True}
    with fixtures.simulators([ports["model-a"]], tmp_path, dict(slow, model="model-a")) as (dying,), \
            fixtures.simulators([ports["model-b"]], tmp_path, dict(slow, model="model-b")), \
            fixtures.nginx(conf, lb_port, tmp_path) as lb, \
            httpx.Client(base_url=lb.url, timeout=10, headers=_bearer(KEY_ADMIN)) as client:
        with client.stream("POST", "/v1/chat/completions", json=dict(chat, model="model-b")) as whole:
            events = [line for line in whole.iter_lines() if line]
        assert events[-1] == "data: [DONE]"
        _usage_lines(tmp_path / "usage.log", 1)
        answered = client.post("/v1/completions", json={"model": "model-b", "prompt": "hi", "max_tokens": 2})
        assert answered.status_code == 200
        _usage_lines(tmp_path / "usage.log", 2)
        with client.stream("POST", "/v1/chat/completions", json=dict(chat, model="model-b")) as left:
            for index, _ in enumerate(left.iter_lines()):
                if index == 4:
                    break  # the client goes away mid-stream
        _usage_lines(tmp_path / "usage.log", 3)
        with pytest.raises(httpx.RemoteProtocolError), \
                client.stream("POST", "/v1/chat/completions", json=dict(chat, model="model-a")) as crashed:
            for index, _ in enumerate(crashed.iter_lines()):
                if index == 4:
                    dying.kill()  # the model server dies mid-stream
        lines = _usage_lines(tmp_path / "usage.log", 4)
    ends = [(field("model", line), field("status", line), field("stream", line)) for line in lines]
    assert ends == [("model-b", "200", "done"), ("model-b", "200", "-"), ("model-b", "200", "cut"),
                    ("model-a", "200", "cut")]
    assert all(field("stream", line) for line in (tmp_path / "access.log").read_text().splitlines())


def field(name, line):
    return dict(part.split("=", 1) for part in line.split() if "=" in part).get(name)
