"""Destination settings: parsed and validated once, into an immutable value.

The options themselves (names, defaults, environment variables, checks) are defined in
:mod:`~sentry_llm_callbacks.config.options`; this module checks where traces go (DSN, endpoint and
whether plain HTTP is allowed, which depend on each other) and builds the :class:`Destination`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from sentry_llm_callbacks._version import __version__
from sentry_llm_callbacks.base.errors import ConfigurationError
from sentry_llm_callbacks.config.keep import KeepRules
from sentry_llm_callbacks.config.options import (
    BY_NAME,
    MAX_QUEUE_BYTES,
    check_options,
    is_header_value,
    with_defaults,
)
from sentry_llm_callbacks.config.otlp_env import TransportSettings, env_transport
from sentry_llm_callbacks.config.pricing import Price

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

__all__ = [
    "DSN_EXAMPLE",
    "ENDPOINT_EXAMPLE",
    "MAX_QUEUE_BYTES",
    "MAX_REQUEST_BYTES",
    "OTLP_TRACES_SUFFIX",
    "Destination",
    "Dsn",
    "build_destination",
    "is_loopback",
    "parse_dsn",
    "validate_endpoint",
]

DSN_EXAMPLE = "https://PUBLICKEY@o123.ingest.us.sentry.io/456"
ENDPOINT_EXAMPLE = "https://o123.ingest.us.sentry.io/api/456/integration/otlp/v1/traces"
OTLP_TRACES_SUFFIX = "/v1/traces"

#: Requests are kept under this size (Sentry answers 413 above its body limit).
MAX_REQUEST_BYTES = 10 * 1024 * 1024

#: Characters allowed in a host name (IPv6 literals are checked by ``ipaddress``).
_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_")


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
        if not parts.scheme or "://" not in value:
            problem = "the DSN has no scheme; a DSN starts with https:// (or http:// for a receiver on this machine)"
        else:
            problem = f"the scheme must be http or https, not {parts.scheme!r}"
        raise ConfigurationError("dsn", problem, DSN_EXAMPLE)
    if not parts.hostname:
        raise ConfigurationError("dsn", "the DSN has no host", DSN_EXAMPLE)
    _check_host("dsn", parts.hostname, DSN_EXAMPLE)
    if not parts.username:
        raise ConfigurationError("dsn", "the DSN has no public key before the '@'", DSN_EXAMPLE)
    if not is_header_value(parts.username):
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


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses: plain ``http://`` is allowed there.

    >>> is_loopback("127.0.0.1"), is_loopback("::1"), is_loopback("example.com")
    (True, True, False)
    """
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
        if not parts.scheme or "://" not in endpoint:
            problem = "the endpoint has no scheme; it begins with https:// (or http:// for a collector on this machine)"
        else:
            problem = f"the scheme must be http or https, not {parts.scheme!r}"
        raise ConfigurationError("otlp_endpoint", problem, ENDPOINT_EXAMPLE)
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
    if scheme == "http" and not allow and not is_loopback(host):
        raise ConfigurationError(
            fieldname,
            f"plain http:// to {host!r} would send traces unencrypted; use https://",
            example,
            allowed_by="allow_insecure_http",
            allowed_when="if the network is trusted",
        )


@dataclass(frozen=True, slots=True, repr=False)
class Destination:
    """Immutable destination settings returned by :func:`sentry_llm_callbacks.configure`.

    One typed field per option it keeps, named, typed and ordered as :data:`~.options.OPTIONS`
    defines them (a test holds the two equal). ``repr`` shows the endpoint host and project,
    never the DSN key.
    """

    #: Where traces go (checked with ``dsn`` and ``allow_insecure_http``: see build_destination).
    endpoint: str
    dsn: Dsn | None = field(repr=False)
    #: Compression and TLS files, from the standard OTLP exporter environment variables.
    transport: TransportSettings = field(repr=False)
    # The kept options, in the order OPTIONS defines them.
    environment: str | None
    release: str | None
    privacy_mode: bool
    sample_rate: float
    headers: Mapping[str, str]
    service_name: str
    exporters: tuple[SpanExporter, ...]
    max_queue_size: int
    max_queue_bytes: int
    max_batch_size: int
    export_timeout: float
    exit_timeout: float
    run_timeout: float
    max_open_runs: int
    max_content_chars: int
    mask: Callable[[str], str] | None
    prices: Mapping[str, Price]
    capture_errors: bool
    keep: KeepRules | None

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


def build_destination(**given: Any) -> Destination:
    """Check every option (keyword arguments of ``configure()``, by name) and resolve the
    environment defaults. Raises :class:`ConfigurationError` for the first wrong value.

    >>> build_destination(dsn="https://abc@o1.ingest.sentry.io/42").endpoint
    'https://o1.ingest.sentry.io/api/42/integration/otlp/v1/traces'
    """
    values = with_defaults(given)
    endpoint, dsn = _resolve_target(values["dsn"], values["otlp_endpoint"], values["allow_insecure_http"])
    return Destination(endpoint=endpoint, dsn=dsn, transport=env_transport(), **check_options(values))


def _resolve_target(dsn: str | None, otlp_endpoint: str | None, allow_insecure_http: bool) -> tuple[str, Dsn | None]:
    """Where traces go: the endpoint and the parsed DSN, checked against each other.

    An explicit ``otlp_endpoint`` without ``dsn`` does not read the DSN's variable: it may
    point at a collector that is not Sentry.
    """
    dsn_option, endpoint_option = BY_NAME["dsn"], BY_NAME["otlp_endpoint"]
    if dsn is None and otlp_endpoint is None:
        dsn = dsn_option.from_environment()
        otlp_endpoint = endpoint_option.from_environment()
    elif otlp_endpoint is None:
        otlp_endpoint = endpoint_option.from_environment()
    if dsn is None and otlp_endpoint is None:
        raise ConfigurationError(
            "dsn", f"no DSN or OTLP endpoint was given and {dsn_option.env[0]} is not set", DSN_EXAMPLE
        )

    parsed = parse_dsn(dsn) if dsn is not None else None
    if parsed is not None:
        _check_transport_security("dsn", parsed.scheme, parsed.host, allow_insecure_http, DSN_EXAMPLE)
    if otlp_endpoint is None:
        assert parsed is not None
        return parsed.otlp_traces_endpoint(), parsed
    endpoint = validate_endpoint(otlp_endpoint, allow_insecure_http=allow_insecure_http)
    if parsed is not None:
        _check_agreement(parsed, endpoint)
    return endpoint, parsed


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
