"""Destination settings: parsed and validated once, into an immutable value."""

from __future__ import annotations

import ipaddress
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ._version import __version__
from .errors import ConfigurationError
from .otlp_env import TransportSettings, env_headers, env_timeout, env_transport, merge_headers
from .pricing import PriceTable

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

ENV_DSN = "SENTRY_DSN"
ENV_ENDPOINT = "SENTRY_OTLP_TRACES_ENDPOINT"
ENV_ENVIRONMENT = "SENTRY_ENVIRONMENT"
ENV_RELEASE = "SENTRY_RELEASE"
ENV_PRIVACY = "SENTRY_LLM_PRIVACY_MODE"
ENV_SERVICE_NAME = "OTEL_SERVICE_NAME"

DSN_EXAMPLE = "https://PUBLICKEY@o123.ingest.us.sentry.io/456"
ENDPOINT_EXAMPLE = "https://o123.ingest.us.sentry.io/api/456/integration/otlp/v1/traces"
OTLP_TRACES_SUFFIX = "/v1/traces"

#: Requests are kept under this size (Sentry answers 413 above its body limit).
MAX_REQUEST_BYTES = 10 * 1024 * 1024

#: Seconds one export request may take, unless configured or set in the environment.
DEFAULT_EXPORT_TIMEOUT = 10.0

#: Default bound on the export backlog, in compressed bytes (see ``max_queue_bytes``).
MAX_QUEUE_BYTES = 4 * 1024 * 1024

#: Characters allowed in a host name (IPv6 literals are checked by ``ipaddress``).
_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_")
#: RFC 9110 token characters: what a header name may contain.
_TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


@dataclass(frozen=True, slots=True)
class Dsn:
    """A parsed Sentry DSN. ``repr`` and ``str`` never show the public key."""

    scheme: str
    public_key: str = field(repr=False)
    host: str
    port: int | None
    path: str
    project_id: str

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}" if self.port else host

    def otlp_traces_endpoint(self) -> str:
        """``SCHEME://HOST[:PORT][/PATH]/api/PROJECT/integration/otlp/v1/traces``."""
        return f"{self.scheme}://{self.netloc}{self.path}/api/{self.project_id}/integration/otlp/v1/traces"

    def auth_header(self) -> str:
        return (
            f"Sentry sentry_key={self.public_key}, sentry_version=7, sentry_client=sentry-llm-callbacks/{__version__}"
        )

    def __str__(self) -> str:
        return f"{self.scheme}://***@{self.netloc}{self.path}/{self.project_id}"


def parse_dsn(value: object) -> Dsn:
    """Parse a Sentry DSN, raising :class:`ConfigurationError` naming what is wrong.

    >>> parse_dsn("https://abc@o1.ingest.sentry.io/42").project_id
    '42'
    """
    if not isinstance(value, str):
        raise ConfigurationError("dsn", f"the DSN must be a string, not {type(value).__name__}", DSN_EXAMPLE)
    if not value.strip():
        raise ConfigurationError("dsn", "the DSN is empty", DSN_EXAMPLE)
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        raise ConfigurationError("dsn", "the DSN is not a valid URL", DSN_EXAMPLE) from None
    if parts.scheme not in ("http", "https"):
        raise ConfigurationError(
            "dsn", f"the scheme must be http or https, not {parts.scheme or 'missing'!r}", DSN_EXAMPLE
        )
    if not parts.hostname:
        raise ConfigurationError("dsn", "the DSN has no host", DSN_EXAMPLE)
    _check_host("dsn", parts.hostname, DSN_EXAMPLE)
    if not parts.username:
        raise ConfigurationError("dsn", "the DSN has no public key before the '@'", DSN_EXAMPLE)
    if not _is_header_value(parts.username):
        raise ConfigurationError(
            "dsn", "the DSN's public key has characters a request header cannot carry", DSN_EXAMPLE
        )
    path, _, project_id = parts.path.rstrip("/").rpartition("/")
    if not project_id:
        raise ConfigurationError("dsn", "the DSN has no project id at the end of its path", DSN_EXAMPLE)
    if not _is_ascii_number(project_id):
        raise ConfigurationError("dsn", "the project id at the end of the DSN must be a number", DSN_EXAMPLE)
    return Dsn(
        scheme=parts.scheme,
        public_key=parts.username,
        host=parts.hostname,
        port=port,
        path=path,
        project_id=project_id,
    )


def _is_ascii_number(text: str) -> bool:
    """``str.isdigit`` accepts "²" and "４５６"; a project id is ASCII digits only."""
    return text.isascii() and text.isdigit()


def _check_host(fieldname: str, host: str, example: str) -> None:
    if ":" in host:  # an IPv6 literal
        try:
            ipaddress.IPv6Address(host.partition("%")[0])
        except ValueError:
            raise ConfigurationError(fieldname, f"{host!r} is not a valid IPv6 address", example) from None
        return
    if not _HOST_CHARS.issuperset(host) or host.startswith(".") or ".." in host:
        raise ConfigurationError(
            fieldname, f"the host {host!r} is not a valid host name (letters, digits, '-' and '.')", example
        )


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _project_from_endpoint(path: str) -> str | None:
    parts = path.strip("/").split("/")
    if "api" in parts:
        i = parts.index("api")
        if i + 1 < len(parts) and _is_ascii_number(parts[i + 1]):
            return parts[i + 1]
    return None


def validate_endpoint(endpoint: object, *, allow_insecure_http: bool) -> str:
    if not isinstance(endpoint, str) or not endpoint.strip():
        raise ConfigurationError("otlp_endpoint", "the endpoint is empty", ENDPOINT_EXAMPLE)
    endpoint = endpoint.strip()
    try:
        parts = urlsplit(endpoint)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ConfigurationError("otlp_endpoint", "the endpoint is not a valid URL", ENDPOINT_EXAMPLE) from None
    if parts.scheme not in ("http", "https"):
        raise ConfigurationError(
            "otlp_endpoint",
            f"the scheme must be http or https, not {parts.scheme or 'missing'!r}",
            ENDPOINT_EXAMPLE,
        )
    if not parts.hostname:
        raise ConfigurationError("otlp_endpoint", "the endpoint has no host", ENDPOINT_EXAMPLE)
    _check_host("otlp_endpoint", parts.hostname, ENDPOINT_EXAMPLE)
    if not parts.path.rstrip("/").endswith(OTLP_TRACES_SUFFIX):
        raise ConfigurationError(
            "otlp_endpoint", f"an OTLP/HTTP traces endpoint must end in {OTLP_TRACES_SUFFIX!r}", ENDPOINT_EXAMPLE
        )
    _check_transport_security("otlp_endpoint", parts.scheme, parts.hostname, allow_insecure_http, ENDPOINT_EXAMPLE)
    return endpoint.rstrip("/")


def _check_transport_security(fieldname: str, scheme: str, host: str, allow: bool, example: str) -> None:
    if scheme == "http" and not allow and not _is_loopback(host):
        raise ConfigurationError(
            fieldname,
            f"plain http:// to {host!r} would send traces unencrypted; use https://, or pass "
            "allow_insecure_http=True if the network is trusted",
            example,
        )


def _env_flag(name: str) -> bool | None:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return None
    return raw.strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True, slots=True)
class Destination:
    """Immutable destination settings returned by :func:`sentry_llm_callbacks.configure`.

    ``repr`` shows the endpoint host and project, never the DSN key.
    """

    endpoint: str
    dsn: Dsn | None = field(repr=False)
    headers: Mapping[str, str] = field(repr=False)
    environment: str | None
    release: str | None
    privacy_mode: bool
    sample_rate: float
    service_name: str
    exporters: tuple[SpanExporter, ...] = field(repr=False)
    max_queue_size: int = field(repr=False)
    max_queue_bytes: int = field(repr=False)
    max_batch_size: int = field(repr=False)
    export_timeout: float = field(repr=False)
    exit_timeout: float = field(repr=False)
    run_timeout: float = field(repr=False)
    max_open_runs: int = field(repr=False)
    max_content_chars: int = field(repr=False)
    mask: Callable[[str], str] | None = field(repr=False)
    prices: PriceTable = field(repr=False)
    capture_errors: bool = field(default=True, repr=False)
    #: Compression and TLS files, from the standard OTLP exporter environment variables.
    transport: TransportSettings = field(default=TransportSettings(), repr=False)

    @property
    def host(self) -> str:
        return urlsplit(self.endpoint).netloc.rpartition("@")[2]

    @property
    def project_id(self) -> str | None:
        return self.dsn.project_id if self.dsn else _project_from_endpoint(urlsplit(self.endpoint).path)

    def request_headers(self) -> dict[str, str]:
        out = {"Content-Type": "application/x-protobuf", **self.headers}
        if self.dsn is not None:
            out["X-Sentry-Auth"] = self.dsn.auth_header()
        return out

    def __repr__(self) -> str:
        project = f", project={self.project_id}" if self.project_id else ""
        return (
            f"Destination(host={self.host!r}{project}, environment={self.environment!r}, "
            f"release={self.release!r}, privacy_mode={self.privacy_mode}, sample_rate={self.sample_rate})"
        )


def build_destination(
    *,
    dsn: str | None = None,
    otlp_endpoint: str | None = None,
    environment: str | None = None,
    release: str | None = None,
    privacy_mode: bool | None = None,
    sample_rate: float = 1.0,
    headers: Mapping[str, str] | None = None,
    service_name: str | None = None,
    allow_insecure_http: bool = False,
    exporters: Sequence[SpanExporter] = (),
    max_queue_size: int = 100_000,
    max_queue_bytes: int = MAX_QUEUE_BYTES,
    max_batch_size: int = 512,
    export_timeout: float | None = None,
    exit_timeout: float = 5.0,
    run_timeout: float = 3600.0,
    max_open_runs: int = 100_000,
    max_content_chars: int = 20_000,
    mask: Callable[[str], str] | None = None,
    pricing: Mapping[str, Any] | None = None,
    capture_errors: bool = True,
) -> Destination:
    """Validate everything and resolve environment defaults. Raises :class:`ConfigurationError`.

    ``headers`` and ``export_timeout`` left out come from the standard OTLP exporter variables
    (:mod:`.otlp_env`), else no extra headers and 10 s."""
    if dsn is None and otlp_endpoint is None:
        dsn = os.environ.get(ENV_DSN) or None
        otlp_endpoint = os.environ.get(ENV_ENDPOINT) or None
    elif otlp_endpoint is None:
        otlp_endpoint = os.environ.get(ENV_ENDPOINT) or None
    if dsn is None and otlp_endpoint is None:
        raise ConfigurationError("dsn", f"no DSN or OTLP endpoint was given and {ENV_DSN} is not set", DSN_EXAMPLE)

    parsed = parse_dsn(dsn) if dsn is not None else None
    if parsed is not None:
        _check_transport_security("dsn", parsed.scheme, parsed.host, allow_insecure_http, DSN_EXAMPLE)
    if otlp_endpoint is not None:
        endpoint = validate_endpoint(otlp_endpoint, allow_insecure_http=allow_insecure_http)
        if parsed is not None:
            _check_agreement(parsed, endpoint)
    else:
        assert parsed is not None
        endpoint = parsed.otlp_traces_endpoint()

    if (
        not isinstance(sample_rate, (int, float))
        or isinstance(sample_rate, bool)
        or not (math.isfinite(sample_rate) and 0.0 <= sample_rate <= 1.0)
    ):
        raise ConfigurationError("sample_rate", f"must be a number from 0.0 to 1.0, not {sample_rate!r}", "0.25")
    clean_headers = merge_headers(
        _validate_headers(headers),
        _validate_headers(env_headers(), "OTEL_EXPORTER_OTLP_TRACES_HEADERS or OTEL_EXPORTER_OTLP_HEADERS"),
    )
    if export_timeout is None:
        export_timeout = env_timeout() or DEFAULT_EXPORT_TIMEOUT
    for name, value, example in (
        ("max_queue_size", max_queue_size, "100000"),
        ("max_queue_bytes", max_queue_bytes, str(MAX_QUEUE_BYTES)),
        ("max_batch_size", max_batch_size, "512"),
        ("max_open_runs", max_open_runs, "100000"),
        ("max_content_chars", max_content_chars, "20000"),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigurationError(name, f"must be a positive integer, not {value!r}", example)
    for name, value, example in (
        ("export_timeout", export_timeout, "10.0"),
        ("exit_timeout", exit_timeout, "5.0"),
        ("run_timeout", run_timeout, "3600.0"),
    ):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not (0 < value < math.inf):
            raise ConfigurationError(name, f"must be a positive, finite number of seconds, not {value!r}", example)
    if pricing is not None and not isinstance(pricing, Mapping):
        raise ConfigurationError(
            "pricing", "must be a dict of model id to prices", '{"my-model": {"input": 3e-6, "output": 1.2e-5}}'
        )
    if mask is not None and not callable(mask):
        raise ConfigurationError("mask", "must be a callable taking a string and returning a string", "str.upper")
    exporters = tuple(exporters)
    for exp in exporters:
        if not callable(getattr(exp, "export", None)):
            raise ConfigurationError(
                "exporters", f"{type(exp).__name__} is not an OpenTelemetry SpanExporter", "[ConsoleSpanExporter()]"
            )
    if not isinstance(capture_errors, bool):
        raise ConfigurationError("capture_errors", f"must be True or False, not {capture_errors!r}", "False")
    if privacy_mode is None:
        privacy_mode = bool(_env_flag(ENV_PRIVACY))
    elif not isinstance(privacy_mode, bool):  # "false" is truthy: a string would switch it on silently
        raise ConfigurationError("privacy_mode", f"must be True or False, not {privacy_mode!r}", "True")
    return Destination(
        endpoint=endpoint,
        dsn=parsed,
        headers=MappingProxyType(clean_headers),
        environment=_optional_str("environment", environment, ENV_ENVIRONMENT, "production"),
        release=_optional_str("release", release, ENV_RELEASE, "v2.1.0"),
        privacy_mode=bool(privacy_mode),
        sample_rate=float(sample_rate),
        service_name=_optional_str("service_name", service_name, ENV_SERVICE_NAME, "support-bot") or "llm-app",
        exporters=exporters,
        max_queue_size=max_queue_size,
        max_queue_bytes=max_queue_bytes,
        max_batch_size=max_batch_size,
        export_timeout=float(export_timeout),
        exit_timeout=float(exit_timeout),
        run_timeout=float(run_timeout),
        max_open_runs=max_open_runs,
        max_content_chars=max_content_chars,
        mask=mask,
        prices=PriceTable(pricing),
        capture_errors=capture_errors,
        transport=env_transport(),
    )


def _optional_str(name: str, value: object, env: str, example: str) -> str | None:
    if value is None:
        value = os.environ.get(env) or None
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigurationError(name, f"must be a string, not {type(value).__name__}", repr(example))
    return value


def _validate_headers(headers: Mapping[str, str] | None, field_name: str = "headers") -> dict[str, str]:
    if headers is None:
        return {}
    if not isinstance(headers, Mapping):
        raise ConfigurationError(field_name, "must be a mapping of header names to values", '{"X-Api-Key": "..."}')
    out: dict[str, str] = {}
    for k, v in headers.items():
        name = k.strip() if isinstance(k, str) else k
        if not isinstance(name, str) or not name or not _TOKEN_CHARS.issuperset(name):
            raise ConfigurationError(
                field_name,
                f"header name {k!r} is not valid: letters, digits and -_.!#$%&'*+^`|~ only, no space or colon",
                '{"X-Api-Key": "..."}',
            )
        if not isinstance(v, str) or not _is_header_value(v):
            raise ConfigurationError(
                field_name,
                f"the value of header {name!r} must be a single-line string of Latin-1 characters",
                '{"X-Api-Key": "..."}',
            )
        out[name] = v
    return out


def _is_header_value(value: str) -> bool:
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return not any((ord(c) < 32 and c != "\t") or ord(c) == 127 for c in value)


def _check_agreement(dsn: Dsn, endpoint: str) -> None:
    parts = urlsplit(endpoint)
    if (parts.hostname or "").lower() != dsn.host.lower() or (parts.port or None) != dsn.port:
        raise ConfigurationError(
            "otlp_endpoint",
            f"the endpoint's host {parts.hostname!r} does not match the DSN's host {dsn.host!r}",
            dsn.otlp_traces_endpoint(),
        )
    project = _project_from_endpoint(parts.path)
    if project is not None and project != dsn.project_id:
        raise ConfigurationError(
            "otlp_endpoint",
            f"the endpoint's project id {project} does not match the DSN's project id {dsn.project_id}",
            dsn.otlp_traces_endpoint(),
        )
