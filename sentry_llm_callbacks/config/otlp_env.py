"""The standard OTLP exporter environment variables that apply to a traces endpoint.

They are read as ``opentelemetry-exporter-otlp-proto-http`` reads them: the ``_TRACES_``
variable first, then the generic one; headers in the W3C Baggage-like ``key=value,key2=value2``
form (names lowercased, values percent-decoded) with explicit ``headers=`` winning key by key;
the timeout in seconds, as that package takes it. Explicit ``configure()`` arguments win.

Two differences, both on purpose: with no compression variable set the body is gzipped (Sentry
expects it; the package's default is none), and a value that cannot be used (a timeout that is
not a positive number, an unknown compression) is logged once and ignored, keeping our default,
rather than replacing it with the package's.

Example::

    OTEL_EXPORTER_OTLP_TRACES_HEADERS="x-api-key=abc123"
    OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE=/etc/ssl/collector-ca.pem
    OTEL_EXPORTER_OTLP_TRACES_COMPRESSION=gzip
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass

from opentelemetry.sdk.environment_variables import (
    OTEL_EXPORTER_OTLP_CERTIFICATE,
    OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE,
    OTEL_EXPORTER_OTLP_CLIENT_KEY,
    OTEL_EXPORTER_OTLP_COMPRESSION,
    OTEL_EXPORTER_OTLP_HEADERS,
    OTEL_EXPORTER_OTLP_TIMEOUT,
    OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE,
    OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE,
    OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY,
    OTEL_EXPORTER_OTLP_TRACES_COMPRESSION,
    OTEL_EXPORTER_OTLP_TRACES_HEADERS,
    OTEL_EXPORTER_OTLP_TRACES_TIMEOUT,
)

from sentry_llm_callbacks.base.log import log_once

#: The default body compression: what Sentry's ingestion expects.
GZIP = "gzip"
#: The names ``OTEL_EXPORTER_OTLP_TRACES_COMPRESSION`` may give.
COMPRESSIONS = ("gzip", "deflate", "none")


@dataclass(frozen=True, slots=True)
class TransportSettings:
    """How requests reach the endpoint: body compression and TLS files (paths)."""

    #: The body compression's name: ``gzip`` (the default), ``deflate`` or ``none``.
    compression: str = GZIP
    #: CA bundle to verify the endpoint's certificate with (None: the system's / ``requests``').
    certificate: str | None = None
    #: Client certificate and key for mutual TLS.
    client_certificate: str | None = None
    client_key: str | None = None

    @property
    def verify(self) -> bool | str:
        """``requests``' ``verify``: the CA bundle's path, or True."""
        return self.certificate or True

    @property
    def cert(self) -> str | tuple[str, str] | None:
        """``requests``' ``cert``: the client certificate, with its key when that is a separate file."""
        if not self.client_certificate:
            return None
        if self.client_key:
            return (self.client_certificate, self.client_key)
        return self.client_certificate


#: Where the headers and the timeout are read from, first one set wins.
HEADERS_VARIABLES = (OTEL_EXPORTER_OTLP_TRACES_HEADERS, OTEL_EXPORTER_OTLP_HEADERS)
TIMEOUT_VARIABLES = (OTEL_EXPORTER_OTLP_TRACES_TIMEOUT, OTEL_EXPORTER_OTLP_TIMEOUT)


def _env(traces_name: str, generic_name: str) -> str | None:
    return os.environ.get(traces_name) or os.environ.get(generic_name) or None


def env_headers() -> dict[str, str]:
    """Headers from ``OTEL_EXPORTER_OTLP_TRACES_HEADERS``, else ``OTEL_EXPORTER_OTLP_HEADERS``."""
    raw = _env(OTEL_EXPORTER_OTLP_TRACES_HEADERS, OTEL_EXPORTER_OTLP_HEADERS) or ""
    if not raw:
        return {}
    from opentelemetry.util.re import parse_env_headers  # OpenTelemetry's own parser, when there is something to parse

    return parse_env_headers(raw, liberal=True)


def parse_timeout(raw: str) -> float | None:
    """Seconds from the text of an OTLP timeout variable; None (with one warning) when unusable."""
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not (0 < seconds < math.inf):
        log_once("env-timeout", logging.WARNING, "Ignoring the OTLP timeout %r: not a positive number of seconds.", raw)
        return None
    return seconds


def env_compression() -> str:
    """From ``OTEL_EXPORTER_OTLP_TRACES_COMPRESSION``, else ``OTEL_EXPORTER_OTLP_COMPRESSION``; gzip by default."""
    raw = _env(OTEL_EXPORTER_OTLP_TRACES_COMPRESSION, OTEL_EXPORTER_OTLP_COMPRESSION)
    if raw is None:
        return GZIP
    name = raw.strip().lower()
    if name not in COMPRESSIONS:
        log_once(
            "env-compression", logging.WARNING, "Ignoring the OTLP compression %r: not one of %s.", raw, COMPRESSIONS
        )
        return GZIP
    return name


def env_transport() -> TransportSettings:
    """Compression and TLS files from the environment."""
    return TransportSettings(
        compression=env_compression(),
        certificate=_env(OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE, OTEL_EXPORTER_OTLP_CERTIFICATE),
        client_certificate=_env(OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE, OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE),
        client_key=_env(OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY, OTEL_EXPORTER_OTLP_CLIENT_KEY),
    )


def merge_headers(explicit: dict[str, str], from_env: dict[str, str]) -> dict[str, str]:
    """``from_env`` with ``explicit`` winning, names compared without case (HTTP's rule)."""
    taken = {name.lower() for name in explicit}
    merged = {name: value for name, value in from_env.items() if name.lower() not in taken}
    merged.update(explicit)
    return merged
