"""The lab's load balancers as customers meet them: HTTPS from the fleet CA, API keys, limits, routing by model,
and a key removed under load without cutting the other keys' streams."""

from __future__ import annotations

import time
from collections import Counter

import httpx
import openai
import pytest
from conftest import MODEL_A, run_playbook
from lab_traffic import Background, lab_key, lab_tls, stream_chat

MODEL_B = "simulated-llm-small"
LOAD_SECONDS_MAX = 240
REQUESTS_MAX = 3000


def _openai(fleet, region, key="lab-admin", http=None):
    hostvars = fleet.hostvars[fleet.load_balancer(region)]
    return openai.OpenAI(base_url=f"{fleet.lb_url(region)}/v1", api_key=lab_key(hostvars, key) if key else "none",
                         http_client=http or httpx.Client(verify=lab_tls(hostvars), timeout=60), max_retries=0)


@pytest.mark.parametrize("region", ["us-east", "eu-west"])
def test_the_openai_client_streams_token_by_token_over_tls_with_its_key(fleet, region):
    client = _openai(fleet, region)
    started, arrivals, text = time.monotonic(), [], []
    stream = client.chat.completions.create(model=MODEL_B, max_tokens=20, stream=True,
                                            messages=[{"role": "user", "content": "Stream me a story."}])
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.monotonic() - started)
            text.append(chunk.choices[0].delta.content)
            assert chunk.model == MODEL_B
    assert len(text) == 20
    assert arrivals[-1] - arrivals[0] > 0.2, arrivals  # 15 ms per token in the lab: not one buffered burst
    assert sorted(m.id for m in client.models.list()) == [MODEL_A, MODEL_B]


def test_a_wrong_or_missing_key_gets_401_and_a_key_sees_only_its_models(fleet):
    with pytest.raises(openai.AuthenticationError) as wrong:
        _openai(fleet, "us-east", key=None).chat.completions.create(
            model=MODEL_A, messages=[{"role": "user", "content": "hi"}], max_tokens=2)
    assert wrong.value.code == "invalid_api_key"
    with fleet.client(key=None, timeout=10) as anonymous:
        assert anonymous.post(f"{fleet.lb_url('us-east')}/v1/chat/completions", json={}).status_code == 401
    small = _openai(fleet, "us-east", key="lab-small")
    assert [m.id for m in small.models.list()] == [MODEL_B]
    with pytest.raises(openai.NotFoundError) as denied:
        small.chat.completions.create(model=MODEL_A, messages=[{"role": "user", "content": "hi"}], max_tokens=2)
    assert denied.value.code == "model_not_found"


def test_a_key_over_its_limit_gets_429_with_retry_after(fleet):
    with fleet.client(key="lab-limited", timeout=30) as client:
        answers = [client.post(f"{fleet.lb_url('eu-west')}/v1/chat/completions",
                               json={"model": MODEL_A, "max_tokens": 1, "messages": [{"role": "user", "content": "x"}]})
                   for _ in range(8)]
    codes = Counter(a.status_code for a in answers)
    assert codes[200] >= 1 and codes[429] >= 1, codes
    refused = next(a for a in answers if a.status_code == 429)
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"


def test_unknown_models_and_administrative_paths_get_404(fleet):
    with fleet.client(timeout=10) as client:
        unknown = client.post(f"{fleet.lb_url('us-east')}/v1/chat/completions",
                              json={"model": "no-such-model", "messages": [{"role": "user", "content": "x"}]})
        admin = [client.post(f"{fleet.lb_url('us-east')}{path}", json={})
                 for path in ("/pause", "/sleep", "/reset_prefix_cache", "/collective_rpc", "/metrics")]
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "model_not_found"
    assert [a.status_code for a in admin] == [404] * len(admin)


class Streams(Background):
    """Streamed chats with the admin key through both load balancers, bounded in count and time."""

    def __init__(self, fleet):
        super().__init__()
        self.fleet, self.outcomes, self.failures = fleet, Counter(), []
        self.deadline = time.monotonic() + LOAD_SECONDS_MAX
        for region in fleet.regions:
            for model in (MODEL_A, MODEL_B):
                self.run(self._stream, region, model)

    def _stream(self, region, model):
        with self.fleet.client(timeout=60) as client:
            while not self.stop.is_set() and time.monotonic() < self.deadline:
                if sum(self.outcomes.values()) >= REQUESTS_MAX:
                    return
                outcome = stream_chat(client, self.fleet.lb_url(region), model)
                with self.lock:
                    self.outcomes["ok" if outcome.ok else "failed"] += 1
                    self.outcomes["resent"] += outcome.resent
                    if not outcome.ok:
                        self.failures.append(f"{region} {model}: {outcome.what}")


def test_removing_a_key_under_load_cuts_no_stream_of_the_other_keys(fleet, tmp_path):
    # The lab's keys without lab-small, written as the inventory writes them (the keys stay in their files).
    kept = ["lab-admin", "lab-limited"]
    lines = ["nginx_lb_api_keys:"]
    for name in kept:
        lookup = f"lookup('ansible.builtin.file', lab_api_key_dir ~ '/{name}')"
        lines += [f"  - name: {name}", f'    key: "{{{{ {lookup} }}}}"']
        lines += ["    rate: 1000", "    burst: 1000", "    concurrency: 1000"]
    keys_file = tmp_path / "keys.yml"
    keys_file.write_text("\n".join(lines) + "\n")
    with Streams(fleet) as load:
        time.sleep(2)
        removed = run_playbook("playbooks/site.yml", "--tags", "nginx_lb", "-e", f"@{keys_file}")
        time.sleep(2)
    try:
        assert removed.returncode == 0, removed.stdout[-3000:]
        assert load.outcomes["ok"] >= 20, load.outcomes
        assert load.outcomes["failed"] == 0, load.failures[:10]
        with fleet.client(key="lab-small", timeout=10) as client:
            assert client.get(f"{fleet.lb_url('us-east')}/v1/models").status_code == 401
    finally:
        restored = run_playbook("playbooks/site.yml", "--tags", "nginx_lb")
    assert restored.returncode == 0, restored.stdout[-3000:]
    with fleet.client(key="lab-small", timeout=10) as client:
        assert client.get(f"{fleet.lb_url('us-east')}/v1/models").status_code == 200
