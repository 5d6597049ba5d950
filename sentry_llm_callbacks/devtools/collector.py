"""Ready-to-paste configuration for an OpenTelemetry collector that forwards traces to Sentry.

Two forms, from one DSN:

* :func:`collector_yaml`: the OpenTelemetry Collector's YAML (an ``otlphttp`` exporter to Sentry);
* :func:`collector_env`: environment variables and flags for ``rotel-agent`` (``pip install rotel``),
  and ``OTEL_EXPORTER_OTLP_TRACES_*`` for any OpenTelemetry SDK sending straight to Sentry.

Both carry the DSN's public key: that is what the collector needs to authenticate to Sentry.

The pitfall these spare users: header lists in environment variables and collector flags are
comma-separated ``key=value`` pairs, so the ``X-Sentry-Auth`` value this package sends
(``Sentry sentry_key=KEY, sentry_version=7, ...``) cannot be pasted there: the list splits at the
comma and ``rotel-agent`` refuses to start ("invalid HTTP header name"). Sentry accepts
``Sentry sentry_key=KEY`` alone, which has no comma.
"""

from __future__ import annotations

import json
import shlex
from urllib.parse import quote

from sentry_llm_callbacks.base.errors import ConfigurationError
from sentry_llm_callbacks.config.settings import DSN_EXAMPLE, OTLP_TRACES_SUFFIX, Dsn, parse_dsn

AUTH_HEADER = "X-Sentry-Auth"
DEFAULT_LISTEN = "0.0.0.0:4318"


def collector_auth_value(dsn: Dsn) -> str:
    """The ``X-Sentry-Auth`` value a collector sends: the public key alone, no comma.

    >>> collector_auth_value(parse_dsn("https://abc@o1.ingest.sentry.io/42"))
    'Sentry sentry_key=abc'
    """
    if "," in dsn.public_key:
        # Sentry keys are hex; a comma would split the header list the value is pasted into.
        raise ConfigurationError("dsn", "the DSN's public key contains a comma", DSN_EXAMPLE)
    return f"Sentry sentry_key={dsn.public_key}"


def rotel_settings(dsn: str, *, listen: str = DEFAULT_LISTEN) -> dict[str, str]:
    """``rotel-agent`` settings as its environment variables, in the order they are printed.

    ``listen`` is the ``host:port`` the agent accepts OTLP/HTTP on. Raises :class:`ConfigurationError`
    for a bad DSN.

    >>> rotel_settings("https://abc@o1.ingest.sentry.io/42")["ROTEL_OTLP_EXPORTER_CUSTOM_HEADERS"]
    'X-Sentry-Auth=Sentry sentry_key=abc'
    """
    parsed = parse_dsn(dsn)
    traces = parsed.otlp_traces_endpoint()
    return {
        "ROTEL_OTLP_HTTP_ENDPOINT": listen,
        "ROTEL_EXPORTER": "otlp",
        "ROTEL_OTLP_EXPORTER_PROTOCOL": "http",
        # rotel requires a base endpoint for every signal, even the disabled ones.
        "ROTEL_OTLP_EXPORTER_ENDPOINT": traces.removesuffix(OTLP_TRACES_SUFFIX),
        "ROTEL_OTLP_EXPORTER_TRACES_ENDPOINT": traces,
        # rotel sends the value as written (no URL decoding), so the space stays a space.
        "ROTEL_OTLP_EXPORTER_CUSTOM_HEADERS": f"{AUTH_HEADER}={collector_auth_value(parsed)}",
        "ROTEL_OTLP_RECEIVER_METRICS_DISABLED": "true",
        "ROTEL_OTLP_RECEIVER_LOGS_DISABLED": "true",
    }


def rotel_flags(dsn: str, *, listen: str = DEFAULT_LISTEN) -> list[str]:
    """The same settings as ``rotel-agent start`` arguments.

    >>> rotel_flags("https://abc@o1.ingest.sentry.io/42")[:2]
    ['--otlp-http-endpoint', '0.0.0.0:4318']
    """
    return [word for name, value in rotel_settings(dsn, listen=listen).items() for word in _flag(name, value)]


def _flag(name: str, value: str) -> list[str]:
    """``ROTEL_OTLP_HTTP_ENDPOINT`` -> ``--otlp-http-endpoint VALUE``; a ``true`` switch has no value."""
    flag = "--" + name.removeprefix("ROTEL_").lower().replace("_", "-")
    return [flag] if value == "true" else [flag, value]


def sdk_settings(dsn: str) -> dict[str, str]:
    """``OTEL_EXPORTER_OTLP_TRACES_*`` for an OpenTelemetry SDK exporting straight to Sentry.

    The OTLP exporter specification reads header values URL-encoded, so the space is ``%20``.

    >>> sdk_settings("https://abc@o1.ingest.sentry.io/42")["OTEL_EXPORTER_OTLP_TRACES_HEADERS"]
    'X-Sentry-Auth=Sentry%20sentry_key=abc'
    """
    parsed = parse_dsn(dsn)
    return {
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": parsed.otlp_traces_endpoint(),
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS": f"{AUTH_HEADER}={quote(collector_auth_value(parsed), safe='=')}",
    }


def collector_yaml(dsn: str, *, listen: str = DEFAULT_LISTEN) -> str:
    """OpenTelemetry Collector configuration that receives OTLP/HTTP and forwards traces to Sentry.

    Raises :class:`ConfigurationError` for a bad DSN.

    >>> 'X-Sentry-Auth: "Sentry sentry_key=abc"' in collector_yaml("https://abc@o1.ingest.sentry.io/42")
    True
    """
    parsed = parse_dsn(dsn)
    # JSON strings are valid YAML double-quoted scalars: no value can break the document.
    q = json.dumps
    return "\n".join(
        [
            "# collector.yaml: OpenTelemetry Collector (otelcol or otelcol-contrib) -> Sentry",
            "receivers:",
            "  otlp:",
            "    protocols:",
            "      http:",
            f"        endpoint: {q(listen)}",
            "processors:",
            "  batch:",
            "    send_batch_max_size: 512  # keeps each request under Sentry's body limit",
            "exporters:",
            "  otlphttp/sentry:",
            f"    traces_endpoint: {q(parsed.otlp_traces_endpoint())}",
            "    headers:",
            f"      {AUTH_HEADER}: {q(collector_auth_value(parsed))}",
            "    compression: gzip",
            "service:",
            "  pipelines:",
            "    traces:",
            "      receivers: [otlp]",
            "      processors: [batch]",
            "      exporters: [otlphttp/sentry]",
        ]
    )


def collector_env(dsn: str, *, listen: str = DEFAULT_LISTEN) -> str:
    """Shell lines for ``rotel-agent`` (variables, then the same as flags) and for an OpenTelemetry SDK.

    Raises :class:`ConfigurationError` for a bad DSN.

    >>> "ROTEL_OTLP_EXPORTER_CUSTOM_HEADERS" in collector_env("https://abc@o1.ingest.sentry.io/42")
    True
    """
    rotel = rotel_settings(dsn, listen=listen)
    lines = [
        "# Header lists below are comma-separated key=value pairs, so a value must not contain a comma:",
        '# "Sentry sentry_key=KEY, sentry_version=7" splits the list (rotel-agent refuses to start with',
        '# "invalid HTTP header name"). Sentry accepts "Sentry sentry_key=KEY" alone, as printed here.',
        "",
        "# rotel-agent (github.com/streamfold/rotel; pip install rotel ships it inside the package),",
        "# configured by environment variables:",
        *(f"export {name}={shlex.quote(value)}" for name, value in rotel.items()),
        "rotel-agent start",
        "",
        "# or the same as flags:",
        "rotel-agent start \\",
        *_continued([shlex.join(_flag(name, value)) for name, value in rotel.items()]),
        "",
        "# Any OpenTelemetry SDK exporting straight to Sentry (header values URL-encoded, per the OTLP spec):",
        *(f"export {name}={shlex.quote(value)}" for name, value in sdk_settings(dsn).items()),
    ]
    return "\n".join(lines)


def _continued(parts: list[str]) -> list[str]:
    """Indented shell lines, each but the last ending in a line continuation."""
    return [f"  {part} \\" for part in parts[:-1]] + [f"  {parts[-1]}"]


def collector_config(dsn: str, *, form: str = "all", listen: str = DEFAULT_LISTEN) -> str:
    """What ``sentry-llm-callbacks collector-config`` prints: ``form`` is ``yaml``, ``env`` or ``all``.

    >>> collector_config("https://abc@o1.ingest.sentry.io/42", form="yaml").startswith("# collector.yaml")
    True
    """
    if form not in ("all", "yaml", "env"):
        raise ConfigurationError("form", f"must be 'all', 'yaml' or 'env', not {form!r}", "'yaml'")
    parts = []
    if form in ("yaml", "all"):
        parts.append(collector_yaml(dsn, listen=listen))
    if form in ("env", "all"):
        parts.append(collector_env(dsn, listen=listen))
    return "\n\n".join(parts)
