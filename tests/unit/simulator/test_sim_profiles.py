"""Each GPU profile reproduces the published vLLM serving benchmark it was calibrated to (profiles.py cites it),
run as that benchmark ran: a closed loop of C clients, its prompt and output lengths, in virtual time."""

import pytest
from gpufleet_simulator.profiles import PROFILES
from gpufleet_simulator.virtual import replay as loop

# The step-time model matches how inter-token latency grows with the batch; TTFT it matches less well (profiles.py
# says why), so its bound is wider.
ITL_TOLERANCE, TTFT_TOLERANCE = 0.10, 0.30
CASES = [(profile, published) for profile in PROFILES.values() for published in profile.published]


@pytest.mark.parametrize(("profile", "published"), CASES,
                         ids=[f"{profile.name}-c{published.concurrency}" for profile, published in CASES])
def test_the_profile_reproduces_its_published_latencies(profile, published):
    result = loop(profile, published.concurrency)
    assert result.itl_ms_mean == pytest.approx(published.itl_ms, rel=ITL_TOLERANCE)
    assert result.ttft_ms_median == pytest.approx(published.ttft_ms, rel=TTFT_TOLERANCE)
    assert result.preemptions == 0  # the published runs are far from filling the cache


@pytest.mark.parametrize("profile", list(PROFILES.values()), ids=list(PROFILES))
def test_more_concurrency_buys_throughput_with_latency(profile):
    results = [loop(profile, concurrency) for concurrency in (1, 8, 64)]
    itls = [result.itl_ms_mean for result in results]
    throughputs = [result.output_tokens_per_s for result in results]
    assert itls == sorted(itls) and itls[-1] > 2 * itls[0]
    assert throughputs == sorted(throughputs) and throughputs[-1] > 10 * throughputs[0]


def test_a_cache_too_small_for_the_load_preempts_and_slows_every_request():
    profile = PROFILES["gpt-oss-20b-h200"]
    roomy = loop(profile, 16)
    # 16 sequences of up to 2000 tokens need 2000 blocks; 1000 blocks hold half of them
    tight = loop(profile, 16, kv_cache_blocks=1000)
    assert tight.preemptions > 0
    assert tight.output_tokens_per_s < 0.8 * roomy.output_tokens_per_s


def test_a_shared_prefix_shortens_the_time_to_first_token():
    profile = PROFILES["gpt-oss-20b-h100-pcie"]
    unique = loop(profile, 4, output_tokens=50)
    shared = loop(profile, 4, output_tokens=50, shared_prefix_tokens=960)
    assert shared.prefix_hit_rate > 0.85
    assert shared.ttft_ms_median < 0.5 * unique.ttft_ms_median
