"""configure(): DSN parsing, endpoint derivation, validation, environment, verify."""

from __future__ import annotations

import pytest

import sentry_llm_callbacks as slc
from sentry_llm_callbacks import _state
from sentry_llm_callbacks.config.settings import parse_dsn
from sentry_llm_callbacks.devtools.receiver import LocalReceiver
from tests.support.fault_receiver import Fault, FaultyReceiver

KEY = "abcdef0123456789abcdef0123456789"
DSN = f"https://{KEY}@o123.ingest.us.sentry.io/456"


def test_endpoint_is_derived_from_the_dsn() -> None:
    dest = slc.configure(dsn=DSN)
    assert dest.endpoint == "https://o123.ingest.us.sentry.io/api/456/integration/otlp/v1/traces"
    assert dest.request_headers()["X-Sentry-Auth"] == (
        f"Sentry sentry_key={KEY}, sentry_version=7, sentry_client=sentry-llm-callbacks/{slc.__version__}"
    )


def test_dsn_with_port_and_path_prefix() -> None:
    dest = slc.configure(dsn=f"https://{KEY}@sentry.example.com:9000/prefix/path/42")
    assert dest.endpoint == "https://sentry.example.com:9000/prefix/path/api/42/integration/otlp/v1/traces"
    assert dest.project_id == "42"


def test_repr_shows_host_and_project_never_the_key() -> None:
    dest = slc.configure(dsn=DSN, environment="production")
    text = repr(dest) + str(dest) + repr(parse_dsn(DSN)) + str(parse_dsn(DSN))
    assert "o123.ingest.us.sentry.io" in repr(dest) and "project=456" in repr(dest)
    assert KEY not in text


def test_destination_is_immutable() -> None:
    dest = slc.configure(dsn=DSN)
    with pytest.raises(AttributeError):
        dest.endpoint = "https://elsewhere/v1/traces"  # type: ignore[misc]
    with pytest.raises(TypeError):
        dest.headers["X"] = "y"  # type: ignore[index]


@pytest.mark.parametrize(
    ("kwargs", "field", "fragment"),
    [
        ({"dsn": ""}, "dsn", "empty"),
        ({"dsn": "not a url"}, "dsn", "scheme"),
        ({"dsn": "https://o1.ingest.sentry.io/1"}, "dsn", "public key"),
        ({"dsn": f"https://{KEY}@o1.ingest.sentry.io/"}, "dsn", "project id"),
        ({"dsn": f"https://{KEY}@o1.ingest.sentry.io/abc"}, "dsn", "must be a number"),
        ({"dsn": f"ftp://{KEY}@o1.ingest.sentry.io/1"}, "dsn", "http or https"),
        ({"dsn": f"https://{KEY}@host:notaport/1"}, "dsn", "not a valid URL"),
        ({"dsn": f"http://{KEY}@o1.ingest.sentry.io/1"}, "dsn", "unencrypted"),
        ({"otlp_endpoint": "https://collector.example.com/v1/logs"}, "otlp_endpoint", "/v1/traces"),
        ({"otlp_endpoint": "http://collector.example.com:4318/v1/traces"}, "otlp_endpoint", "allow_insecure_http"),
        ({"otlp_endpoint": "grpc://collector:4317/v1/traces"}, "otlp_endpoint", "http or https"),
        (
            {"dsn": DSN, "otlp_endpoint": "https://other.example.com/api/456/integration/otlp/v1/traces"},
            "otlp_endpoint",
            "does not match the DSN's host",
        ),
        (
            {"dsn": DSN, "otlp_endpoint": "https://o123.ingest.us.sentry.io/api/999/integration/otlp/v1/traces"},
            "otlp_endpoint",
            "project id 999",
        ),
        ({"dsn": DSN, "sample_rate": 1.5}, "sample_rate", "0.0 to 1.0"),
        ({"dsn": DSN, "headers": {"X-Bad": "a\nb"}}, "headers", "single-line"),
        ({"dsn": DSN, "max_queue_size": 0}, "max_queue_size", "positive integer"),
        ({"dsn": DSN, "mask": "not callable"}, "mask", "callable"),
    ],
)
def test_bad_configuration_names_the_field_and_shows_an_example(kwargs: dict, field: str, fragment: str) -> None:
    with pytest.raises(slc.ConfigurationError) as info:
        slc.configure(**kwargs)
    assert isinstance(info.value, ValueError)
    assert info.value.field == field
    message = str(info.value)
    assert message.startswith(f"{field}:")
    assert fragment in message
    assert "Example of a valid value:" in message
    assert KEY not in message


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"dsn": f"{KEY}@o1.ingest.sentry.io/1"}, "dsn: the DSN has no scheme; a DSN starts with https://"),
        ({"dsn": "localhost:4318/1"}, "dsn: the DSN has no scheme"),
        ({"dsn": f"://{KEY}@o1.ingest.sentry.io/1"}, "dsn: the DSN has no scheme"),
        ({"otlp_endpoint": "collector:4318/v1/traces"}, "otlp_endpoint: the endpoint has no scheme; it begins with"),
    ],
)
def test_a_value_without_a_scheme_is_told_so(kwargs: dict, says: str) -> None:
    """It used to read "the scheme must be http or https, not 'missing'"."""
    with pytest.raises(slc.ConfigurationError) as info:
        slc.configure(**kwargs)
    assert str(info.value).startswith(says)
    assert "'missing'" not in str(info.value) and KEY not in str(info.value)


def test_the_option_that_allows_plain_http_can_be_spelled_as_a_flag() -> None:
    with pytest.raises(slc.ConfigurationError) as info:
        slc.configure(dsn=f"http://{KEY}@o1.ingest.sentry.io/1")
    error = info.value
    assert error.allowed_by == "allow_insecure_http"
    assert "or pass allow_insecure_http=True if the network is trusted." in str(error)
    assert error.problem.endswith("or pass allow_insecure_http=True if the network is trusted")
    flag = error.phrased(lambda name: "--" + name.replace("_", "-"))
    assert "or pass --allow-insecure-http if the network is trusted." in flag
    assert "allow_insecure_http" not in flag and flag.startswith("dsn: plain http:// to 'o1.ingest.sentry.io'")


def test_nothing_configured_raises_a_clear_error() -> None:
    with pytest.raises(slc.ConfigurationError, match="SENTRY_DSN is not set"):
        slc.configure()


def test_plain_http_is_fine_for_loopback_and_with_opt_in() -> None:
    assert slc.configure(dsn=f"http://{KEY}@127.0.0.1:9000/1").endpoint.startswith("http://127.0.0.1:9000/")
    assert slc.configure(dsn=f"http://{KEY}@localhost:9000/1")
    dest = slc.configure(otlp_endpoint="http://collector.internal:4318/v1/traces", allow_insecure_http=True)
    assert dest.endpoint == "http://collector.internal:4318/v1/traces"


def test_dsn_and_matching_endpoint_may_both_be_given() -> None:
    endpoint = "https://o123.ingest.us.sentry.io/api/456/integration/otlp/v1/traces"
    dest = slc.configure(dsn=DSN, otlp_endpoint=endpoint)
    assert dest.endpoint == endpoint
    assert "X-Sentry-Auth" in dest.request_headers()


def test_endpoint_without_dsn_uses_given_headers_and_no_sentry_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENTRY_DSN", DSN)  # ignored: an explicit endpoint without dsn
    dest = slc.configure(otlp_endpoint="https://collector.example.com/v1/traces", headers={"X-Api-Key": "k1"})
    headers = dest.request_headers()
    assert headers["X-Api-Key"] == "k1"
    assert "X-Sentry-Auth" not in headers
    assert dest.dsn is None


def test_environment_variables_are_defaults_and_arguments_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENTRY_DSN", DSN)
    monkeypatch.setenv("SENTRY_ENVIRONMENT", "staging")
    monkeypatch.setenv("SENTRY_RELEASE", "r1")
    monkeypatch.setenv("SENTRY_LLM_PRIVACY_MODE", "true")
    dest = slc.configure()
    assert (dest.project_id, dest.environment, dest.release, dest.privacy_mode) == ("456", "staging", "r1", True)
    dest = slc.configure(environment="production", release="r2", privacy_mode=False)
    assert (dest.environment, dest.release, dest.privacy_mode) == ("production", "r2", False)
    monkeypatch.setenv(
        "SENTRY_OTLP_TRACES_ENDPOINT", "https://o123.ingest.us.sentry.io/api/456/integration/otlp/v1/traces"
    )
    assert slc.configure().endpoint.endswith("/api/456/integration/otlp/v1/traces")


def test_verify_keeps_the_previous_destination_when_the_test_fails(receiver: FaultyReceiver) -> None:
    good = slc.configure(dsn=receiver.dsn, verify=True)
    bad_dsn = f"http://wrongkey@127.0.0.1:{receiver.port}/{receiver.project_id}"
    with pytest.raises(slc.ConnectionTestError) as info:
        slc.configure(dsn=bad_dsn, verify=True)
    assert info.value.result.reason == "unauthorized"
    assert _state.current_destination() is good
    receiver.fault = Fault(status=503)
    with pytest.raises(slc.ConnectionTestError):
        slc.configure(dsn=receiver.dsn, environment="x", verify=True)
    assert _state.current_destination() is good


def test_reconfigure_starts_a_fresh_pipeline(receiver: LocalReceiver) -> None:
    slc.configure(dsn=receiver.dsn)
    first = _state.get_pipeline()
    slc.configure(dsn=receiver.dsn, environment="other")
    second = _state.get_pipeline()
    assert first is not None and second is not None and first is not second
    assert second.destination.environment == "other"
