"""Every configure() option is defined once (sentry_llm_callbacks.config.options.OPTIONS): the signature,
the Destination's fields, the checks, the environment fallbacks, the defaults used downstream and
the documentation's table (docs/configuration.md) all follow that definition."""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Mapping
from typing import Any

import pytest
from opentelemetry.sdk.trace.export import SpanExporter

import sentry_llm_callbacks as slc
from sentry_llm_callbacks.config import settings as settings_module
from sentry_llm_callbacks.config.keep import KeepRules
from sentry_llm_callbacks.config.options import BY_NAME, DEFAULT_EXPORT_TIMEOUT, KEPT, OPTIONS, markdown_table
from sentry_llm_callbacks.config.pricing import Price
from sentry_llm_callbacks.config.settings import Destination, build_destination
from sentry_llm_callbacks.core.content import ContentPolicy
from sentry_llm_callbacks.core.pricing import PriceTable
from sentry_llm_callbacks.devtools.receiver import LocalReceiver
from sentry_llm_callbacks.export.pipeline import QueueSpanProcessor
from tests.support.environment import ENV_VARS, REPO_ROOT
from tests.support.spans import delivered

KEY = "abcdef0123456789abcdef0123456789"
DSN = f"https://{KEY}@o123.ingest.us.sentry.io/456"

#: A value each checked option refuses.
WRONG: dict[str, Any] = {
    "environment": 1,
    "release": ["v1"],
    "privacy_mode": "false",
    "sample_rate": 1.5,
    "headers": ["X-Api-Key"],
    "service_name": 3.0,
    "exporters": [object()],
    "max_queue_size": 0,
    "max_queue_bytes": -1,
    "max_batch_size": 1.5,
    "export_timeout": 0,
    "exit_timeout": float("inf"),
    "run_timeout": "60",
    "max_open_runs": True,
    "max_content_chars": None,
    "mask": "not callable",
    "pricing": ["gpt-4o"],
    "capture_errors": "no",
    "keep": {"slower_than": -1},
}

#: Per option read from the environment: the variable's text, the value it gives, an argument
#: that must win over it.
FROM_ENV: dict[str, tuple[str, Any, Any]] = {
    "environment": ("staging", "staging", "production"),
    "release": ("r1", "r1", "r2"),
    "privacy_mode": ("true", True, False),
    "service_name": ("support-bot", "support-bot", "billing-bot"),
    "export_timeout": ("7", 7.0, 3.0),
}
#: Read from the environment together, with their own rules (tests/config/test_destination.py).
WHERE = ("dsn", "otlp_endpoint")
#: Merged with the environment's, name by name (tests/export/test_pipeline_parts.py).
MERGED = ("headers",)


def _parameter_line(option: Any) -> str:
    return f"    {option.name}: {option.annotation} = {option.default!r},"


def test_configure_signature_is_the_definition() -> None:
    parameters = list(inspect.signature(slc.configure).parameters.values())
    expected = "\n".join(_parameter_line(option) for option in OPTIONS)
    hint = f"configure()'s parameters must be, in this order:\n{expected}"
    assert [p.name for p in parameters] == [o.name for o in OPTIONS], hint
    for parameter, option in zip(parameters, OPTIONS, strict=True):
        assert parameter.kind is inspect.Parameter.KEYWORD_ONLY, parameter.name
        assert parameter.default == option.default and type(parameter.default) is type(option.default), hint
        assert parameter.annotation == option.annotation, hint


def test_unknown_options_are_refused() -> None:
    with pytest.raises(TypeError, match="sample_rates"):
        slc.configure(dsn=DSN, sample_rates=0.5)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="sample_rates"):
        build_destination(dsn=DSN, sample_rates=0.5)


def test_the_destination_has_one_field_per_kept_option() -> None:
    names = [f.name for f in dataclasses.fields(Destination)]
    assert names == ["endpoint", "dsn", "transport", *(option.attribute for option in KEPT)]
    types = {f.name: f.type for f in dataclasses.fields(Destination)}
    for option in KEPT:  # written out in the class, so that a reader can go to each field's definition
        assert types[option.attribute] == option.attribute_type, option.name
    hints = typing.get_type_hints(Destination, {**vars(settings_module), "SpanExporter": SpanExporter})
    assert hints["keep"] == KeepRules | None and hints["prices"] == Mapping[str, Price]
    assert "verify" not in names and "allow_insecure_http" not in names
    destination = slc.configure(dsn=DSN)
    for option in KEPT:
        if option.check is None or option.name in (
            "headers",
            "pricing",
            "exporters",
            "service_name",
            "privacy_mode",
            "export_timeout",
        ):
            continue  # kept in another form; checked below
        assert getattr(destination, option.attribute) == option.default, option.name
    assert destination.headers == {} and destination.exporters == ()
    assert destination.export_timeout == DEFAULT_EXPORT_TIMEOUT
    assert destination.privacy_mode is False and destination.service_name == "llm-app"
    assert dict(destination.prices) == {}


def test_given_values_reach_the_destination() -> None:
    mask = str.upper
    destination = slc.configure(
        dsn=DSN,
        sample_rate=1,
        max_queue_size=7,
        export_timeout=3,
        mask=mask,
        pricing={"my-model": {"input": 1e-6, "output": 2e-6}},
        headers={" X-Api-Key ": "k"},
        capture_errors=False,
    )
    assert destination.sample_rate == 1.0 and isinstance(destination.sample_rate, float)
    assert destination.export_timeout == 3.0 and isinstance(destination.export_timeout, float)
    assert destination.max_queue_size == 7 and destination.mask is mask and destination.capture_errors is False
    assert dict(destination.headers) == {"X-Api-Key": "k"}
    assert destination.prices["my-model"] == Price(input=1e-6, output=2e-6)
    assert PriceTable(destination.prices).lookup("my-model") is destination.prices["my-model"]


def test_every_checked_option_has_a_wrong_value_listed() -> None:
    checked = {option.name for option in OPTIONS if option.check is not None}
    assert checked == set(WRONG), "add a wrong value for each new checked option to WRONG"


@pytest.mark.parametrize("name", sorted(WRONG))
def test_a_wrong_value_names_its_option_and_shows_a_right_one(name: str) -> None:
    with pytest.raises(slc.ConfigurationError) as info:
        slc.configure(dsn=DSN, **{name: WRONG[name]})
    option = BY_NAME[name]
    assert info.value.field == name
    assert info.value.example == option.right_value
    assert str(info.value).startswith(f"{name}: ")
    assert KEY not in str(info.value)


def test_each_right_value_shown_is_accepted() -> None:
    """The example in an error message must itself be a value the option takes."""
    for option in OPTIONS:
        if option.check is None or option.name == "exporters":
            continue  # exporters' example names a class the user builds
        value = eval(option.right_value, {"str": str})
        assert slc.configure(dsn=DSN, **{option.name: value}), option.name


def test_every_option_read_from_the_environment_is_covered() -> None:
    with_env = {option.name for option in OPTIONS if option.env}
    assert with_env == set(FROM_ENV) | set(WHERE) | set(MERGED)
    variables = {name for option in OPTIONS for name in option.env}
    assert variables <= set(ENV_VARS), "ENV_VARS (cleared before every test) must hold every option's variable"


@pytest.mark.parametrize("name", sorted(FROM_ENV))
def test_the_environment_is_a_default_and_an_argument_wins(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    text, from_env, explicit = FROM_ENV[name]
    monkeypatch.setenv(BY_NAME[name].env[0], text)
    assert getattr(slc.configure(dsn=DSN), name) == from_env
    assert getattr(slc.configure(dsn=DSN, **{name: explicit}), name) == explicit


def test_options_from_the_environment_reach_the_wire(receiver: LocalReceiver, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "support-bot")
    monkeypatch.setenv("SENTRY_RELEASE", "v9")
    slc.configure(dsn=receiver.dsn, environment="staging")
    assert slc.send_test_trace(timeout=10).ok
    spans = delivered(receiver, 2)
    assert {s.resource["service.name"] for s in spans} == {"support-bot"}
    assert {s.resource["service.version"] for s in spans} == {"v9"}
    assert {s.resource["deployment.environment.name"] for s in spans} == {"staging"}
    assert {s.attributes["sentry.release"] for s in spans} == {"v9"}


def test_downstream_defaults_are_the_options_defaults() -> None:
    queue = inspect.signature(QueueSpanProcessor.__init__).parameters
    for name in ("max_queue_size", "max_queue_bytes", "max_batch_size"):
        assert queue[name].default == BY_NAME[name].default, name
    assert ContentPolicy().max_chars == BY_NAME["max_content_chars"].default


def test_the_documented_table_is_the_definition() -> None:
    page = (REPO_ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    section = page.partition("\n## `configure()` options\n")[2]
    assert section, "docs/configuration.md has no '`configure()` options' section"
    table = markdown_table()
    assert table in section, (
        "docs/configuration.md's table differs from sentry_llm_callbacks/config/options.py; replace it with:\n" + table
    )
    listed = [line.split("`")[1] for line in table.splitlines()[2:]]
    assert listed == [option.name for option in OPTIONS]
    assert "| `max_queue_size` |  | `100_000` |" in table
