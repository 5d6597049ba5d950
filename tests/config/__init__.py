"""Tests of sentry_llm_callbacks.config: configure()'s options, one definition, the destination they make."""
