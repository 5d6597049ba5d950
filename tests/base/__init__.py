"""Tests of sentry_llm_callbacks.base: the warnings a user must act on, as a process that never
set up logging sees them."""
