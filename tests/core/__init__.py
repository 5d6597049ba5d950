"""Tests of sentry_llm_callbacks.core: the run model, names, metadata, content, usage and cost,
sampling, attribute keys, the adapter contract."""
