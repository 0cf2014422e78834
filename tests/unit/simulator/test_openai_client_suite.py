"""The simulator as a user's `openai` client sees it, asserting the answers vLLM gives to the same requests.

The server is the real one (`uvicorn --factory gpufleet_simulator.app:create_app` on 127.0.0.1, sim_support).
Each expected answer names where in vLLM's source it comes from. Read with the search tools from
github.com/vllm-project/vllm (stored snapshots; the commit of each file is given where it was read by commit):

- C: vllm/entrypoints/openai/completion/serving.py @ cc139d8e, OpenAIServingCompletion
  (completion_stream_generator, request_output_to_completion_response)
- P: vllm/entrypoints/openai/completion/protocol.py @ d5dba2d7, CompletionRequest
- T: vllm/entrypoints/serve/tokenize/protocol.py @ 030ea52e and vllm/frontend/entrypoints/serve/tokenize/serving.py
  @ 055e47c2, ServingTokenization.create_tokenize / create_detokenize
- S: vllm/v1/engine/parallel_sampling.py @ 003d3ee2, ParentRequest._get_child_sampling_params
- V: vllm/sampling_params.py, SamplingParams._verify_args, and the error handlers of the API server
  (validation_exception_handler, create_error_response), as cited by the simulator's sampling.py: the earlier
  work on validation read them; this suite did not re-read them.

Which vLLM release those snapshots belong to could not be established from the stored files (vLLM's version comes
from git tags); the collection pins vLLM 0.33.0 (model_server_vllm_version). The paths are those of vLLM's
2026 layout (entrypoints/openai/completion/, entrypoints/serve/tokenize/), the layout 0.33.0 ships or close to it.
"""

from __future__ import annotations

import openai
import pytest
from gpufleet_simulator.tokenizer import count_tokens

MODEL = "simulated-llm"
CHAT = [{"role": "user", "content": "Hello world"}]


@pytest.fixture(scope="module")
def client(fast_server):
    with openai.OpenAI(base_url=fast_server.base_url + "/v1", api_key="unused", max_retries=0) as api:
        yield api


@pytest.fixture(scope="module")
def root_client(fast_server):
    """/tokenize and /detokenize sit at the root, beside /v1, as in vLLM."""
    with openai.OpenAI(base_url=fast_server.base_url, api_key="unused", max_retries=0) as api:
        yield api


def bad_request(call) -> openai.BadRequestError:
    with pytest.raises(openai.BadRequestError) as caught:
        call()
    assert caught.value.status_code == 400
    return caught.value


# --- bad input --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("field", "value"), [
    ("temperature", "hot"),  # V: a float field of the request model; pydantic, lax mode
    ("max_tokens", 2.5),
    ("stop", 3),
    ("seed", "lucky"),
])
def test_a_wrong_type_is_a_body_error(client, field, value):
    # V: FastAPI's RequestValidationError, answered by vLLM's validation_exception_handler: type "Bad Request"
    error = bad_request(lambda: client.completions.create(model=MODEL, prompt="Hi", max_tokens=4,
                                                          extra_body={field: value}))
    assert (error.type, error.param) == ("Bad Request", None)
    assert field in error.message


def test_min_tokens_above_max_tokens_is_refused_by_sampling_params(client):
    # V: SamplingParams._verify_args, through create_error_response (type BadRequestError)
    error = bad_request(lambda: client.completions.create(model=MODEL, prompt="Hi", max_tokens=4,
                                                          extra_body={"min_tokens": 5}))
    assert error.type == "BadRequestError"
    assert error.body["message"] == "min_tokens must be less than or equal to max_tokens=4, got 5."


def test_greedy_sampling_with_several_choices_is_refused(client):
    # V: SamplingParams._verify_greedy_sampling
    error = bad_request(lambda: client.completions.create(model=MODEL, prompt="Hi", max_tokens=4, n=2,
                                                          temperature=0))
    assert error.body["message"] == "n must be 1 when using greedy sampling, got 2."


def test_a_missing_prompt_is_a_body_error(client):
    # P: CompletionRequest.validate_prompt_and_prompt_embeds raises ValueError inside a model validator
    error = bad_request(lambda: client.completions.create(model=MODEL, prompt=None, max_tokens=4))
    assert error.type == "Bad Request"
    assert "Either prompt or prompt_embeds must be provided and non-empty." in error.message


def test_a_prompt_of_mixed_types_is_a_body_error(client):
    # P: prompt is list[int] | list[list[int]] | str | list[str]; ["a", 1] is none of them
    error = bad_request(lambda: client.completions.create(model=MODEL, prompt=["a", 1], max_tokens=4))
    assert (error.type, error.param) == ("Bad Request", None)


def test_an_unknown_model_is_not_found(client):
    # OpenAIServing._check_model: 404, NotFoundError, "The model `...` does not exist."
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-5", messages=CHAT, max_tokens=4)
    assert caught.value.status_code == 404
    assert caught.value.body["message"] == "The model `gpt-5` does not exist."


@pytest.mark.parametrize(("extra", "param"), [
    ({"echo": True}, "echo"),
    ({"logprobs": 2}, "logprobs"),
])
def test_options_the_simulator_cannot_honour_are_refused_not_ignored(client, extra, param):
    # vLLM implements these (C: echo and logprobs branches); the simulator answers 400 naming the option
    error = bad_request(lambda: client.completions.create(model=MODEL, prompt="Hi", max_tokens=4, **extra))
    assert (error.type, error.param) == ("BadRequestError", param)


# --- finish reasons and usage -----------------------------------------------------------------------------


def test_max_tokens_ends_with_length_and_usage_adds_up(client):
    completion = client.completions.create(model=MODEL, prompt="Hello, world! How are you?", max_tokens=5)
    choice = completion.choices[0]
    assert (choice.index, choice.finish_reason) == (0, "length")
    assert completion.usage.prompt_tokens == 8  # the simulator's tokenizer: words and punctuation
    assert completion.usage.completion_tokens == count_tokens(choice.text) == 5
    assert completion.usage.total_tokens == 13


def test_a_stop_string_ends_with_stop_and_is_left_out(client):
    # vLLM's check_stop_strings (vllm/v1/engine/detokenizer.py): the text ends before the stop string
    completion = client.completions.create(model=MODEL, prompt="Hello", max_tokens=20, stop=".")
    choice = completion.choices[0]
    assert choice.finish_reason == "stop" and "." not in choice.text
    assert choice.model_extra["stop_reason"] == "."


def test_chat_stop_and_usage(client):
    chat = client.chat.completions.create(model=MODEL, messages=CHAT, max_tokens=20, stop=[","])
    assert chat.choices[0].finish_reason == "stop" and "," not in chat.choices[0].message.content
    assert chat.usage.completion_tokens > count_tokens(chat.choices[0].message.content)  # the stop token counts


# --- n > 1 and batched prompts ----------------------------------------------------------------------------


def test_n_choices_each_with_its_index_and_usage_counting_all(client):
    completion = client.completions.create(model=MODEL, prompt="Hello world", max_tokens=3, n=3)
    assert [choice.index for choice in completion.choices] == [0, 1, 2]
    # C, request_output_to_completion_response: the prompt once, every choice's tokens
    assert completion.usage.prompt_tokens == 2
    assert completion.usage.completion_tokens == 9 == sum(count_tokens(c.text) for c in completion.choices)


def test_seeded_choices_differ_from_each_other_and_repeat(client):
    # S: child j of n samples with seed + j
    def texts():
        return [c.text for c in client.completions.create(model=MODEL, prompt="Hi", max_tokens=12, n=2,
                                                          seed=11).choices]

    first = texts()
    assert first == texts() and first[0] != first[1]


def test_a_batch_of_prompts_times_n_is_indexed_prompt_major(client):
    completion = client.completions.create(model=MODEL, prompt=["one two", "three four five"], max_tokens=2, n=2)
    # C: choice j of prompt i is index i * n + j; usage sums every prompt once and every choice
    assert [choice.index for choice in completion.choices] == [0, 1, 2, 3]
    assert completion.usage.prompt_tokens == 2 + 3
    assert completion.usage.completion_tokens == 4 * 2


def test_a_batch_of_token_id_lists_is_accepted(client):
    # P: prompt may be list[list[int]]
    completion = client.completions.create(model=MODEL, prompt=[[1, 2, 3], [4]], max_tokens=2)
    assert len(completion.choices) == 2 and completion.usage.prompt_tokens == 4


def test_a_batch_with_one_prompt_too_long_runs_none(client):
    error = bad_request(lambda: client.completions.create(model=MODEL, prompt=["short", "word " * 70],
                                                          max_tokens=2))
    assert "maximum context length is 64 tokens" in error.message


# --- streaming --------------------------------------------------------------------------------------------


def test_streamed_choices_of_a_batch_with_include_usage(client):
    stream = client.completions.create(model=MODEL, prompt=["one", "two three"], max_tokens=3, n=2, stream=True,
                                       stream_options={"include_usage": True})
    chunks = list(stream)
    *content, last = chunks
    # C, completion_stream_generator: index = output.index + prompt_idx * num_choices
    by_index: dict[int, list] = {}
    for chunk in content:
        (choice,) = chunk.choices
        by_index.setdefault(choice.index, []).append(choice)
    assert sorted(by_index) == [0, 1, 2, 3]
    assert all([c.finish_reason for c in choices] == [None, None, "length"] for choices in by_index.values())
    # the final usage chunk: no choices, the prompts once, every choice's tokens
    assert last.choices == [] and (last.usage.prompt_tokens, last.usage.completion_tokens) == (3, 12)


def test_streamed_chat_with_n_sends_a_role_chunk_per_choice(client):
    stream = client.chat.completions.create(model=MODEL, messages=CHAT, max_tokens=2, n=2, stream=True,
                                            stream_options={"include_usage": True})
    chunks = list(stream)
    roles = [c.choices[0].index for c in chunks if c.choices and c.choices[0].delta.role == "assistant"]
    assert roles == [0, 1]
    assert chunks[-1].usage.completion_tokens == 4 and chunks[-1].usage.prompt_tokens == 12


def test_a_stream_without_include_usage_has_no_usage(client):
    chunks = list(client.completions.create(model=MODEL, prompt="Hi", max_tokens=3, stream=True))
    assert [c.choices[0].finish_reason for c in chunks] == [None, None, "length"]
    assert all(c.usage is None for c in chunks)


# --- /tokenize and /detokenize ----------------------------------------------------------------------------


def test_tokenize_counts_what_usage_counts_and_detokenize_inverts_it(client, root_client):
    text = "Hello, world! How are you?"
    # T: TokenizeResponse {count, max_model_len, tokens, token_strs}
    answer = root_client.post("/tokenize", cast_to=object, body={"model": MODEL, "prompt": text,
                                                                 "return_token_strs": True})
    assert answer["count"] == len(answer["tokens"]) == 8 and answer["max_model_len"] == 64
    assert "".join(answer["token_strs"]) == text
    usage = client.completions.create(model=MODEL, prompt=text, max_tokens=1).usage
    assert usage.prompt_tokens == answer["count"]
    # T: DetokenizeResponse {prompt}
    assert root_client.post("/detokenize", cast_to=object, body={"tokens": answer["tokens"]}) == {"prompt": text}


def test_tokenize_messages_as_the_chat_prompt(client, root_client):
    answer = root_client.post("/tokenize", cast_to=object, body={"messages": CHAT})
    assert answer["token_strs"] is None
    chat = client.chat.completions.create(model=MODEL, messages=CHAT, max_tokens=1)
    assert answer["count"] == chat.usage.prompt_tokens
    without = root_client.post("/tokenize", cast_to=object, body={"messages": CHAT, "add_generation_prompt": False})
    assert without["count"] < answer["count"]


def test_tokenize_refuses_what_vllm_refuses(root_client):
    # T: TokenizeChatRequest.check_generation_prompt, a model validator: a body error
    error = bad_request(lambda: root_client.post("/tokenize", cast_to=object, body={
        "messages": CHAT, "continue_final_message": True, "add_generation_prompt": True}))
    assert "Cannot set both `continue_final_message` and `add_generation_prompt` to True." in error.message
    # T: DetokenizeRequest.tokens are ints >= 0
    assert bad_request(lambda: root_client.post("/detokenize", cast_to=object, body={"tokens": [-1]})).type == (
        "Bad Request")
    with pytest.raises(openai.NotFoundError):
        root_client.post("/tokenize", cast_to=object, body={"model": "gpt-5", "prompt": "x"})
