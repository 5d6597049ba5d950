"""Every ``configure()`` option, defined once: name, type, default, environment variables, what
it does and how it is checked.

Everything else comes from :data:`OPTIONS`: the fields of
:class:`~sentry_llm_callbacks.config.settings.Destination`, the checks
:func:`~sentry_llm_callbacks.config.settings.build_destination` runs, the defaults the export queue and
the content policy fall back to (:func:`default`), and the documentation's configuration table
(:func:`markdown_table`, held equal to ``docs/configuration.md`` by a test). ``configure()`` keeps an
explicit keyword-only signature, so that editors and type checkers show every option; a test holds it
equal to this table. Adding an option is adding one :class:`Option` here and its parameter there.

The options that say where traces go (``dsn``, ``otlp_endpoint``, ``allow_insecure_http``) are
checked together, in :mod:`~sentry_llm_callbacks.config.settings`, because each one's rules depend on
the others; every other option is checked on its own, by its ``check``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from sentry_llm_callbacks.base.errors import ConfigurationError
from sentry_llm_callbacks.config.keep import KEEP_EXAMPLE, KeepRules, parse_keep
from sentry_llm_callbacks.config.otlp_env import (
    HEADERS_VARIABLES,
    TIMEOUT_VARIABLES,
    env_headers,
    merge_headers,
    parse_timeout,
)
from sentry_llm_callbacks.config.pricing import PRICING_EXAMPLE, Price, parse_pricing

#: Default bound on the export backlog, in compressed bytes (see ``max_queue_bytes``).
MAX_QUEUE_BYTES = 4 * 1024 * 1024

#: Seconds one export request may take, when neither ``export_timeout`` nor the OTLP timeout
#: variable is given.
DEFAULT_EXPORT_TIMEOUT = 10.0

#: ``service.name`` when neither ``service_name`` nor ``OTEL_SERVICE_NAME`` is given.
DEFAULT_SERVICE_NAME = "llm-app"

#: RFC 9110 token characters: what a header name may contain.
_TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_HEADERS_EXAMPLE = '{"X-Api-Key": "..."}'


@dataclass(frozen=True, slots=True)
class Option:
    """One keyword argument of ``configure()``."""

    name: str
    #: The type ``configure()`` accepts, exactly as its signature spells it.
    annotation: str
    default: Any
    #: One line for the documentation's configuration table (``docs/configuration.md``).
    doc: str
    #: Turns the given value into the one the destination keeps, or raises ConfigurationError.
    #: None: the value is used as given (or, for the options that say where traces go, checked
    #: together in ``config``).
    check: Callable[[Option, Any], Any] | None = None
    #: Environment variables read, first one set wins, when the argument is left at None.
    env: tuple[str, ...] = ()
    #: Turns an environment variable's text into a value (None: treat it as unset).
    parse_env: Callable[[str], Any] = str
    #: The check reads ``env`` itself and merges it with the given value (headers do: the
    #: variable's headers are sent too, the given ones win name by name).
    merges_env: bool = False
    #: A right value, shown in a ConfigurationError; the default's repr when empty.
    example: str = ""
    #: Whether the Destination keeps the checked value, as an attribute of its own.
    kept: bool = True
    #: The name of that attribute, when it differs from the option's.
    stored_as: str = ""
    #: The type of that attribute, when it differs from ``annotation``.
    stored_type: str = ""

    @property
    def attribute(self) -> str:
        return self.stored_as or self.name

    @property
    def attribute_type(self) -> str:
        return self.stored_type or self.annotation

    @property
    def right_value(self) -> str:
        return self.example or repr(self.default)

    def fail(self, problem: str) -> ConfigurationError:
        return ConfigurationError(self.name, problem, self.right_value)

    def from_environment(self) -> Any:
        """The value of the first of ``env`` that is set (an empty variable counts as unset)."""
        for name in self.env:
            raw = os.environ.get(name) or None
            value = self.parse_env(raw) if raw is not None else None
            if value is not None:
                return value
        return None


# --------------------------------------------------------------------------- checks


def _text(option: Option, value: object) -> str | None:
    if value is not None and not isinstance(value, str):
        raise option.fail(f"must be a string, not {type(value).__name__}")
    return value


def _service_name(option: Option, value: object) -> str:
    return _text(option, value) or DEFAULT_SERVICE_NAME


def _flag(option: Option, value: object) -> bool:
    # "false" is truthy: a string would switch an option on silently.
    if not isinstance(value, bool):
        raise option.fail(f"must be True or False, not {value!r}")
    return value


def _optional_flag(option: Option, value: object) -> bool:
    return False if value is None else _flag(option, value)


def _env_flag(raw: str) -> bool | None:
    if not raw.strip():
        return None
    return raw.strip().lower() in ("1", "true", "yes", "on")


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _rate(option: Option, value: object) -> float:
    if not _is_number(value) or not (math.isfinite(value) and 0.0 <= value <= 1.0):  # type: ignore[arg-type]
        raise option.fail(f"must be a number from 0.0 to 1.0, not {value!r}")
    return float(value)  # type: ignore[arg-type]


def _positive_int(option: Option, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise option.fail(f"must be a positive integer, not {value!r}")
    return value


def _seconds_or_default(option: Option, value: object) -> float:
    return DEFAULT_EXPORT_TIMEOUT if value is None else _seconds(option, value)


def _seconds(option: Option, value: object) -> float:
    if not _is_number(value) or not (0 < value < math.inf):  # type: ignore[operator]
        raise option.fail(f"must be a positive, finite number of seconds, not {value!r}")
    return float(value)  # type: ignore[arg-type]


def is_header_value(value: str) -> bool:
    """True if an HTTP request header can carry ``value`` (one line of Latin-1)."""
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return not any((ord(c) < 32 and c != "\t") or ord(c) == 127 for c in value)


def _header_map(value: object, fail: Callable[[str], ConfigurationError]) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise fail("must be a mapping of header names to values")
    out: dict[str, str] = {}
    for k, v in value.items():
        name = k.strip() if isinstance(k, str) else k
        if not isinstance(name, str) or not name or not _TOKEN_CHARS.issuperset(name):
            raise fail(f"header name {k!r} is not valid: letters, digits and -_.!#$%&'*+^`|~ only, no space or colon")
        if not isinstance(v, str) or not is_header_value(v):
            raise fail(f"the value of header {name!r} must be a single-line string of Latin-1 characters")
        if v[:1].isspace():  # the HTTP library refuses it on every request
            raise fail(f"the value of header {name!r} must not start with a space or tab")
        out[name] = v
    return out


def _headers(option: Option, value: object) -> Mapping[str, str]:
    """The given headers over the OTLP headers variable's (names compared without case)."""
    given = _header_map(value, option.fail)
    from_env = _header_map(
        env_headers(), lambda problem: ConfigurationError(" or ".join(option.env), problem, "x-api-key=abc123")
    )
    return MappingProxyType(merge_headers(given, from_env))


def _exporters(option: Option, value: Any) -> tuple[Any, ...]:
    exporters = tuple(value)
    for exporter in exporters:
        if not callable(getattr(exporter, "export", None)):
            raise option.fail(f"{type(exporter).__name__} is not an OpenTelemetry SpanExporter")
    return exporters


def _mask(option: Option, value: object) -> Callable[[str], str] | None:
    if value is not None and not callable(value):
        raise option.fail("must be a callable taking a string and returning a string")
    return value


def _keep(option: Option, value: object) -> KeepRules | None:
    return parse_keep(value)


def _prices(option: Option, value: object) -> Mapping[str, Price]:
    if value is not None and not isinstance(value, Mapping):
        raise option.fail("must be a dict of model id to prices")
    return parse_pricing(value)


# --------------------------------------------------------------------------- the options

OPTIONS: tuple[Option, ...] = (
    Option(
        "dsn",
        "str | None",
        None,
        "the Sentry project's DSN. With neither it nor `otlp_endpoint` nor the variable, handlers are no-ops "
        "and one warning is shown (see [When traces do not arrive](troubleshooting.md)), and an "
        "explicit `configure()` raises `ConfigurationError`",
        env=("SENTRY_DSN",),
        kept=False,
    ),
    Option(
        "otlp_endpoint",
        "str | None",
        None,
        "an OTLP/HTTP traces endpoint; derived from the DSN when left out "
        "(`https://HOST/api/PROJECT/integration/otlp/v1/traces`)",
        env=("SENTRY_OTLP_TRACES_ENDPOINT",),
        kept=False,
    ),
    Option(
        "environment",
        "str | None",
        None,
        "`sentry.environment` on every span",
        check=_text,
        env=("SENTRY_ENVIRONMENT",),
        example="'production'",
    ),
    Option(
        "release",
        "str | None",
        None,
        "`sentry.release` on every span",
        check=_text,
        env=("SENTRY_RELEASE",),
        example="'v2.1.0'",
    ),
    Option(
        "privacy_mode",
        "bool | None",
        None,
        "no content leaves the process (the variable: `1`/`true`); off when neither is set",
        check=_optional_flag,
        env=("SENTRY_LLM_PRIVACY_MODE",),
        parse_env=_env_flag,
        example="True",
        stored_type="bool",
    ),
    Option(
        "sample_rate",
        "float",
        1.0,
        "share of traces sent, decided per trace from the trace id",
        check=_rate,
        example="0.25",
    ),
    Option(
        "verify",
        "bool",
        False,
        "`True` runs `test_connection()` first and keeps the previous destination if it fails",
        kept=False,
    ),
    Option(
        "headers",
        "Mapping[str, str] | None",
        None,
        "extra HTTP headers on every request (for a Collector's auth); the variable's are sent too, "
        "these win name by name",
        check=_headers,
        env=HEADERS_VARIABLES,
        merges_env=True,
        example=_HEADERS_EXAMPLE,
        stored_type="Mapping[str, str]",
    ),
    Option(
        "service_name",
        "str | None",
        None,
        f"`service.name` of the resource; `{DEFAULT_SERVICE_NAME}` when neither is set",
        check=_service_name,
        env=("OTEL_SERVICE_NAME",),
        example="'support-bot'",
        stored_type="str",
    ),
    Option(
        "allow_insecure_http",
        "bool",
        False,
        "plain `http://` to a host that is not loopback",
        kept=False,
    ),
    Option(
        "exporters",
        "Sequence[SpanExporter]",
        (),
        "extra OpenTelemetry `SpanExporter`s fed the same spans",
        check=_exporters,
        example="[ConsoleSpanExporter()]",
        stored_type="tuple[SpanExporter, ...]",
    ),
    Option(
        "max_queue_size",
        "int",
        100_000,
        "finished spans waiting to be encoded (see [Performance: bounds](performance.md#bounds))",
        check=_positive_int,
    ),
    Option(
        "max_queue_bytes",
        "int",
        MAX_QUEUE_BYTES,
        "compressed bytes held for export: 4 MiB (see [Performance: bounds](performance.md#bounds))",
        check=_positive_int,
    ),
    Option("max_batch_size", "int", 512, "spans per export request", check=_positive_int),
    Option(
        "export_timeout",
        "float | None",
        None,
        f"seconds per export request (finite, positive); {DEFAULT_EXPORT_TIMEOUT:g} when neither is set",
        check=_seconds_or_default,
        env=TIMEOUT_VARIABLES,
        parse_env=parse_timeout,
        example="10.0",
        stored_type="float",
    ),
    Option(
        "exit_timeout",
        "float",
        5.0,
        "seconds to flush at exit, and `flush()`'s default deadline (finite, positive)",
        check=_seconds,
    ),
    Option(
        "run_timeout", "float", 3600.0, "seconds after which a run with no end is closed as abandoned", check=_seconds
    ),
    Option(
        "max_open_runs",
        "int",
        100_000,
        "runs open at once; past it, new runs are not traced (counted as dropped)",
        check=_positive_int,
    ),
    Option(
        "max_content_chars",
        "int",
        20_000,
        "characters of each content attribute, cut with a visible marker",
        check=_positive_int,
    ),
    Option(
        "mask",
        "Callable[[str], str] | None",
        None,
        "`mask(text) -> text` applied to all content when Privacy Mode is off",
        check=_mask,
        example="str.upper",
    ),
    Option(
        "pricing",
        "Mapping[str, Any] | None",
        None,
        "prices per model id, over genai-prices (see [Token usage and cost](usage-and-cost.md#cost))",
        check=_prices,
        example=PRICING_EXAMPLE,
        stored_as="prices",
        stored_type="Mapping[str, Price]",
    ),
    Option(
        "capture_errors",
        "bool",
        True,
        "errors a run absorbed become Sentry issues through the app's `sentry_sdk`",
        check=_flag,
        example="False",
    ),
    Option(
        "keep",
        "Mapping[str, Any] | None",
        None,
        "rules that keep errored, slow or costly traces at any `sample_rate` "
        "(see [Sampling that keeps what matters](sampling.md))",
        check=_keep,
        example=KEEP_EXAMPLE,
        stored_type="KeepRules | None",
    ),
)

BY_NAME: Mapping[str, Option] = MappingProxyType({option.name: option for option in OPTIONS})

#: The options a Destination keeps, each under its attribute.
KEPT: tuple[Option, ...] = tuple(option for option in OPTIONS if option.kept)


def default(name: str) -> Any:
    """The default of option ``name`` (a KeyError at import time catches a misspelt name)."""
    return BY_NAME[name].default


def with_defaults(given: Mapping[str, Any]) -> dict[str, Any]:
    """Every option's value, by name: the given ones, the defaults for the rest.

    Raises TypeError for a name that is no option, as a call with a wrong keyword would.
    """
    unknown = sorted(set(given) - set(BY_NAME))
    if unknown:
        raise TypeError(f"unexpected keyword argument {unknown[0]!r}: not an option of configure()")
    return {option.name: given.get(option.name, option.default) for option in OPTIONS}


def check_options(values: Mapping[str, Any]) -> dict[str, Any]:
    """Every kept option's checked value, by Destination attribute, in definition order.

    An option left at None falls back to its environment variables first. Raises
    :class:`ConfigurationError` for the first wrong one.
    """
    out: dict[str, Any] = {}
    for option in KEPT:
        value = values[option.name]
        if value is None and option.env and not option.merges_env:
            value = option.from_environment()
        out[option.attribute] = option.check(option, value) if option.check is not None else value
    return out


def markdown_table() -> str:
    """The configuration table of ``docs/configuration.md`` (a test holds the page equal to it)."""
    rows = [
        "| `configure()` argument | environment variable | default | what it does |",
        "| --- | --- | --- | --- |",
    ]
    for option in OPTIONS:
        env = ", ".join(f"`{name}`" for name in option.env)
        rows.append(f"| `{option.name}` | {env} | `{_shown(option.default)}` | {option.doc} |")
    return "\n".join(rows)


def _shown(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 10_000:
        return f"{value:_}"
    return repr(value)
