"""Tests of sentry_llm_callbacks.export: the queue, the encoders, compression, the transport and its faults."""
