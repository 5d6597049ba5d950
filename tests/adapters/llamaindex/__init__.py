"""Tests of sentry_llm_callbacks.llamaindex: LlamaIndex runs as spans."""
