"""A vLLM stand-in: OpenAI-compatible API, vLLM metrics and realistic token timing, without a GPU."""

__version__ = "0.1.0"
