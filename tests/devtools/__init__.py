"""Tests of sentry_llm_callbacks.devtools: the command line, the collector configuration, the waterfall, notebooks."""
