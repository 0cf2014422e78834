"""The stand-in tokenizer and the filler text it has to agree with."""

import random

from gpufleet_simulator.tokenizer import chat_prompt, count_tokens, filler_tokens, tokenize


def test_words_and_punctuation_are_separate_tokens():
    assert tokenize("Hello, world! It's 2 o'clock.") == ["Hello", ",", "world", "!", "It", "'", "s", "2", "o",
                                                         "'", "clock", "."]
    assert count_tokens("Hello, world!") == 4
    assert count_tokens("  \n") == 0


def test_chat_template_costs_tokens():
    prompt = chat_prompt([{"role": "user", "content": "Hello world"}])
    assert prompt == "<|user|>\nHello world\n<|assistant|>\n"
    assert count_tokens(prompt) == 12


def test_filler_is_one_token_per_element_and_repeatable_with_a_seed():
    tokens = filler_tokens(random.Random(3), 50)
    assert len(tokens) == 50
    assert all(len(tokenize(token)) == 1 for token in tokens)
    assert count_tokens("".join(tokens)) == 50
    assert tokens == filler_tokens(random.Random(3), 50)
    assert tokens != filler_tokens(random.Random(4), 50)
