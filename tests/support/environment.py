"""Where the repository is, and the environment variables every test starts without."""

from __future__ import annotations

from pathlib import Path

#: The repository's root: README.md, notebooks/, artifacts/, and the directory child
#: interpreters run in so that ``import tests...`` finds this package.
REPO_ROOT = Path(__file__).resolve().parents[2]

#: Cleared before every test by ``conftest.py``'s ``clean_state`` fixture.
ENV_VARS = (
    "SENTRY_DSN",
    "SENTRY_OTLP_TRACES_ENDPOINT",
    "SENTRY_ENVIRONMENT",
    "SENTRY_RELEASE",
    "SENTRY_LLM_PRIVACY_MODE",
    "OTEL_SERVICE_NAME",
    *(
        f"OTEL_EXPORTER_OTLP_{signal}{name}"
        for signal in ("", "TRACES_")
        for name in ("HEADERS", "TIMEOUT", "COMPRESSION", "CERTIFICATE", "CLIENT_CERTIFICATE", "CLIENT_KEY")
    ),
)
