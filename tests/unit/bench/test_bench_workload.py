"""Workloads: length mixes and conversations, repeatable from a seed."""

import pytest
from gpufleet_bench import workload


def test_length_mix_is_parsed_and_its_mean_weighted():
    mix = workload.parse_mix("16:0.8, 512:0.2")
    assert mix == [(16, 0.8), (512, 0.2)]
    assert workload.mean_tokens(mix) == pytest.approx(115.2)


@pytest.mark.parametrize("bad", ["", "16:x", "0:1", "16:0", "a:1"])
def test_bad_length_mixes_are_refused(bad):
    with pytest.raises(ValueError):
        workload.parse_mix(bad)


def test_requests_follow_the_mix_and_the_seed():
    requests = workload.requests(5000, [(16, 0.8), (512, 0.2)], 10, seed=4)
    share = sum(1 for request in requests if request.max_tokens == 512) / len(requests)
    assert share == pytest.approx(0.2, abs=0.02)
    assert requests == workload.requests(5000, [(16, 0.8), (512, 0.2)], 10, seed=4)
    assert len(requests[0].prompt.split()) == 10 + 2  # "request 0:" and the words
    assert len({request.prompt for request in requests}) == len(requests)


def test_conversations_have_their_turns_and_distinct_sessions():
    talks = workload.conversations(3, 4, context_words=50, turn_words=5, reply_words=7, seed=1)
    assert [talk.session for talk in talks] == ["session-0", "session-1", "session-2"]
    assert all(len(talk.turns) == 4 and len(talk.replies) == 4 for talk in talks)
    assert len(talks[0].replies[0].split()) == 7
    assert talks == workload.conversations(3, 4, context_words=50, turn_words=5, reply_words=7, seed=1)
