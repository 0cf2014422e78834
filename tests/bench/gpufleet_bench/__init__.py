"""gpufleet-bench: an async load generator for OpenAI-compatible LLM endpoints, and the project's benchmark suite."""

__version__ = "0.1.0"
