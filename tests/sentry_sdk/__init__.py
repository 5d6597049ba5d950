"""Tests of sentry_llm_callbacks.sentry_sdk: beside the app's own Sentry SDK (ambient traces,
errors as issues, duplicate integrations, our requests kept out of its data)."""
