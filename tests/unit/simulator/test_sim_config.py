"""Settings: one definition drives env vars, CLI flags, defaults and validation."""

import socket

import pytest
from gpufleet_simulator.cli import build_parser
from gpufleet_simulator.config import ConfigError, SimConfig, env_name, flag_name


def test_defaults_without_environment():
    config = SimConfig.from_env({})
    assert config.model == "simulated-llm"
    assert config.instance_id == socket.gethostname()
    assert (config.ttft_ms, config.itl_ms, config.output_tokens) == (50.0, 20.0, 128)
    assert (config.max_model_len, config.max_num_seqs, config.max_waiting) == (4096, 256, 0)
    assert config.failure_rate == 0.0 and config.failure_types == ("server_error",)
    assert config.seed is None and config.prefix_cache_blocks == 0
    assert config.request_log == ""


def test_every_knob_has_a_prefixed_env_var_and_a_matching_flag():
    names = {knob.name: (env_name(knob), flag_name(knob)) for knob in SimConfig.knobs()}
    assert names["ttft_ms"] == ("GPUFLEET_SIM_TTFT_MS", "--ttft-ms")
    assert names["time_factor_under_load"] == ("GPUFLEET_SIM_TIME_FACTOR_UNDER_LOAD", "--time-factor-under-load")
    assert names["prefix_cache_blocks"] == ("GPUFLEET_SIM_PREFIX_CACHE_BLOCKS", "--prefix-cache-blocks")
    help_text = build_parser().format_help()
    for env, flag in names.values():
        assert env in help_text and flag in help_text


def test_values_are_parsed_to_their_types():
    config = SimConfig.from_env({
        "GPUFLEET_SIM_MODEL": "llama-3-8b", "GPUFLEET_SIM_TTFT_MS": "12.5", "GPUFLEET_SIM_MAX_NUM_SEQS": "8",
        "GPUFLEET_SIM_FAILURE_RATE": "1", "GPUFLEET_SIM_FAILURE_TYPES": "rate_limit, 500",
        "GPUFLEET_SIM_SEED": "7", "GPUFLEET_SIM_INSTANCE_ID": "gpu-1:8000",
    })
    assert (config.model, config.ttft_ms, config.max_num_seqs) == ("llama-3-8b", 12.5, 8)
    assert config.failure_types == ("rate_limit", "500")
    assert (config.failure_rate, config.seed, config.instance_id) == (1.0, 7, "gpu-1:8000")


def test_empty_value_means_default():
    assert SimConfig.from_env({"GPUFLEET_SIM_SEED": "", "GPUFLEET_SIM_ITL_MS": ""}).itl_ms == 20.0


def test_cli_values_win_over_environment_and_are_named_as_flags():
    config = SimConfig.from_env({"GPUFLEET_SIM_ITL_MS": "5"}, {"itl_ms": "7", "ttft_ms": None})
    assert (config.itl_ms, config.ttft_ms) == (7.0, 50.0)
    with pytest.raises(ConfigError, match=r"^--itl-ms \(GPUFLEET_SIM_ITL_MS\): must be >= 0"):
        SimConfig.from_env({}, {"itl_ms": "-1"})


@pytest.mark.parametrize(("variable", "value", "reason"), [
    ("GPUFLEET_SIM_TTFT_MS", "-1", "must be >= 0"),
    ("GPUFLEET_SIM_TTFT_MS", "fast", "must be a number"),
    ("GPUFLEET_SIM_ITL_MS", "nan", "must be a finite number"),
    ("GPUFLEET_SIM_MAX_NUM_SEQS", "0", "must be >= 1"),
    ("GPUFLEET_SIM_MAX_NUM_SEQS", "2.5", "must be an integer"),
    ("GPUFLEET_SIM_FAILURE_RATE", "1.5", "must be <= 1"),
    ("GPUFLEET_SIM_TIME_FACTOR_UNDER_LOAD", "0.5", "must be >= 1"),
    ("GPUFLEET_SIM_FAILURE_TYPES", "teapot", "unknown failure type 'teapot'"),
    ("GPUFLEET_SIM_FAILURE_TYPES", "200", "unknown failure type '200'"),
    ("GPUFLEET_SIM_MODEL", "two words", "must be a non-empty string without whitespace"),
    ("GPUFLEET_SIM_SEED", "x", "must be an integer"),
])
def test_invalid_values_fail_naming_the_variable(variable, value, reason):
    with pytest.raises(ConfigError) as error:
        SimConfig.from_env({variable: value})
    assert str(error.value).startswith(f"{variable}: {reason}")
    assert repr(value) in str(error.value)


def test_unknown_prefixed_variable_is_rejected():
    with pytest.raises(ConfigError, match=r"unknown variable.*GPUFLEET_SIM_TTFT\b"):
        SimConfig.from_env({"GPUFLEET_SIM_TTFT": "10", "OTHER_VARIABLE": "ignored"})
