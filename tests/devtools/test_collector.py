"""Collector configuration: what ``collector-config`` prints is exactly what a real collector needs.

The unit tests read the printed configuration back with the consumers' own parsers (YAML, the
OpenTelemetry SDK's header parser); the ``collector`` tests run ``rotel-agent`` (``pip install rotel``)
between the package and the Sentry-like receiver, configured only from the printed text.
"""

from __future__ import annotations

import doctest
import importlib.util
import os
import shlex
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.util.re import parse_env_headers

import sentry_llm_callbacks as slc
from sentry_llm_callbacks.base.errors import ConfigurationError
from sentry_llm_callbacks.config.settings import parse_dsn
from sentry_llm_callbacks.core import attributes as attr
from sentry_llm_callbacks.devtools import collector
from sentry_llm_callbacks.devtools.collector import collector_config, collector_env, collector_yaml
from sentry_llm_callbacks.devtools.receiver import LocalReceiver
from sentry_llm_callbacks.langchain import SentryCallbackHandler
from tests.support.environment import REPO_ROOT
from tests.support.invariants import check_trace
from tests.support.waiting import wait_until

KEY = "0123456789abcdef0123456789abcdef"
DSNS = (
    f"https://{KEY}@o123.ingest.us.sentry.io/456",
    f"https://{KEY}@sentry.example.com:9000/prefix/path/7",
    f"http://{KEY}@127.0.0.1:8000/1",
)
AUTH = f"Sentry sentry_key={KEY}"
#: Bounded waits: the collector starts in well under a second; these only bound a failure.
START_TIMEOUT = 15.0
DELIVERY_TIMEOUT = 20.0


def exports(text: str, prefix: str) -> dict[str, str]:
    """The ``export NAME=value`` lines of printed shell text whose name starts with ``prefix``."""
    out = {}
    for line in text.splitlines():
        if not line.startswith("export "):
            continue
        words = shlex.split(line)
        if len(words) == 2 and words[1].startswith(prefix):
            name, _, value = words[1].partition("=")
            out[name] = value
    return out


def rotel_command_args(text: str) -> list[str]:
    """The arguments of the printed multi-line ``rotel-agent start \\`` command."""
    start = text.index("rotel-agent start \\\n")
    end = text.index("\n\n", start)
    words = shlex.split(text[start:end].replace("\\\n", " "))
    assert words[:2] == ["rotel-agent", "start"]
    return words[2:]


# -- what is printed ------------------------------------------------------------------------


@pytest.mark.parametrize("dsn", DSNS)
def test_yaml_parses_and_forwards_to_the_dsns_endpoint_with_the_key_alone(dsn: str) -> None:
    config = yaml.safe_load(collector_yaml(dsn))
    exporter = config["exporters"]["otlphttp/sentry"]
    assert exporter["traces_endpoint"] == parse_dsn(dsn).otlp_traces_endpoint()
    assert exporter["headers"] == {"X-Sentry-Auth": AUTH}
    assert config["receivers"]["otlp"]["protocols"]["http"]["endpoint"] == "0.0.0.0:4318"
    pipeline = config["service"]["pipelines"]["traces"]
    assert pipeline == {"receivers": ["otlp"], "processors": ["batch"], "exporters": ["otlphttp/sentry"]}
    assert all(name in config[kind] for kind, names in pipeline.items() for name in names)


@pytest.mark.parametrize("dsn", DSNS)
def test_rotel_forms_carry_the_exact_header_and_the_derived_endpoint(dsn: str) -> None:
    text = collector_env(dsn)
    env = exports(text, "ROTEL_")
    assert env["ROTEL_OTLP_EXPORTER_CUSTOM_HEADERS"] == f"X-Sentry-Auth={AUTH}"
    assert env["ROTEL_OTLP_EXPORTER_TRACES_ENDPOINT"] == parse_dsn(dsn).otlp_traces_endpoint()
    args = rotel_command_args(text)
    assert args[args.index("--otlp-exporter-custom-headers") + 1] == f"X-Sentry-Auth={AUTH}"
    assert args[args.index("--otlp-exporter-traces-endpoint") + 1] == parse_dsn(dsn).otlp_traces_endpoint()


@pytest.mark.parametrize("dsn", DSNS)
def test_no_printed_header_value_contains_a_comma(dsn: str) -> None:
    text = collector_config(dsn)
    header_values = [v for k, v in exports(text, "").items() if k.endswith("HEADERS")]
    header_values.append(
        yaml.safe_load(collector_yaml(dsn))["exporters"]["otlphttp/sentry"]["headers"]["X-Sentry-Auth"]
    )
    assert len(header_values) == 3
    assert not any("," in value for value in header_values)


def test_sdk_header_variable_reads_back_exactly_under_the_otlp_spec() -> None:
    env = exports(collector_env(DSNS[0]), "OTEL_")
    # strict (non-liberal) parsing is the OTLP exporter specification: URL-encoded values
    assert parse_env_headers(env["OTEL_EXPORTER_OTLP_TRACES_HEADERS"]) == {"x-sentry-auth": AUTH}


def test_sdk_variables_deliver_through_the_opentelemetry_exporter(
    receiver: LocalReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in exports(collector_env(receiver.dsn), "OTEL_").items():
        monkeypatch.setenv(name, value)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter()))
    with provider.get_tracer("collector-test").start_as_current_span("from another service"):
        pass
    provider.shutdown()
    (span,) = receiver.wait_for_spans(1, DELIVERY_TIMEOUT)
    assert span.name == "from another service"
    assert receiver.headers[0]["x-sentry-auth"] == AUTH


def test_the_docs_show_what_the_command_prints() -> None:
    page = (REPO_ROOT / "docs" / "collector.md").read_text()
    printed = collector_config("https://PUBLICKEY@o123.ingest.us.sentry.io/456")
    missing = [line for line in printed.splitlines() if line.strip() and not line.startswith("# ") and line not in page]
    assert not missing


def test_the_docstring_examples_hold() -> None:
    assert doctest.testmod(collector).failed == 0


def test_a_key_with_a_comma_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="comma"):
        collector_env("https://ab,cd@o1.ingest.sentry.io/1")


# -- the command ------------------------------------------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTRY_")}
    code = "import sys; from sentry_llm_callbacks.devtools.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60, env=env)


def test_command_prints_both_forms_to_stdout() -> None:
    result = run_cli("collector-config", "--dsn", DSNS[0])
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout == collector_config(DSNS[0]) + "\n"
    assert "otlphttp/sentry" in result.stdout and "ROTEL_OTLP_EXPORTER_CUSTOM_HEADERS" in result.stdout


def test_command_prints_one_form_on_request() -> None:
    result = run_cli("collector-config", "--dsn", DSNS[0], "--format", "yaml", "--listen", "127.0.0.1:4319")
    assert result.returncode == 0
    assert result.stdout == collector_yaml(DSNS[0], listen="127.0.0.1:4319") + "\n"


def test_command_with_a_bad_dsn_is_one_sentence_and_exit_2() -> None:
    result = run_cli("collector-config", "--dsn", "https://o1.ingest.sentry.io/1")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("sentry-llm-callbacks collector-config: dsn: the DSN has no public key")
    assert len(result.stderr.strip().splitlines()) == 1


def test_command_requires_an_explicit_dsn_and_says_it_prints_the_key() -> None:
    result = run_cli("collector-config")
    assert result.returncode == 2 and result.stdout == ""
    assert "--dsn" in result.stderr
    helptext = " ".join(run_cli("collector-config", "--help").stdout.split())
    assert "contains the DSN's public key" in helptext and "stdout only" in helptext


# -- through a real collector -------------------------------------------------------------------


def rotel_binary() -> Path | None:
    found = shutil.which("rotel-agent")
    if found:
        return Path(found)
    spec = importlib.util.find_spec("rotel")
    if spec is None or spec.origin is None:
        return None
    binary = Path(spec.origin).parent / "rotel-agent"
    return binary if binary.is_file() else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Rotel:
    """``rotel-agent start`` in the foreground, with its own gRPC port, PID and log files."""

    def __init__(self, binary: Path, workdir: Path) -> None:
        self.binary = binary
        self.workdir = workdir
        self.process: subprocess.Popen[str] | None = None

    def start(self, args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
        private = {  # so that concurrent runs never share a port or a file
            "ROTEL_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{free_port()}",
            "ROTEL_PID_FILE": str(self.workdir / "rotel.pid"),
            "ROTEL_LOG_FILE": str(self.workdir / "rotel.log"),
        }
        self.process = subprocess.Popen(
            [str(self.binary), "start", *args],
            env={**os.environ, **private, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        return self.process

    def wait_until_listening(self, port: int) -> None:
        process = self.process
        assert process is not None

        def listening() -> bool:  # a port has no event to wait on: it is polled
            if process.poll() is not None:
                pytest.fail(f"rotel-agent exited with {process.returncode}: {self.output()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return True
            except OSError:
                return False

        if not wait_until(listening, timeout=START_TIMEOUT, interval=0.05):
            pytest.fail(f"rotel-agent did not listen on {port} within {START_TIMEOUT} s")

    def output(self) -> str:
        assert self.process is not None
        if self.process.poll() is None:
            self.stop()
        return self.process.communicate(timeout=START_TIMEOUT)[0]

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


@pytest.fixture
def rotel(tmp_path: Path) -> Iterator[Rotel]:
    binary = rotel_binary()
    if binary is None:
        pytest.skip("rotel is not installed (pip install rotel; it is in the dev extra on Linux and macOS)")
    agent = Rotel(binary, tmp_path)
    yield agent
    agent.stop()


def fake_chain() -> Runnable[dict[str, str], str]:
    model = GenericFakeChatModel(
        messages=iter(
            [AIMessage(content="Paris", usage_metadata={"input_tokens": 12, "output_tokens": 3, "total_tokens": 15})]
        )
    )
    return ChatPromptTemplate.from_messages([("human", "Capital of {country}?")]) | model | StrOutputParser()


@pytest.mark.collector
@pytest.mark.parametrize("form", ["environment", "flags"])
def test_langchain_trace_arrives_whole_through_rotel(form: str, rotel: Rotel, receiver: LocalReceiver) -> None:
    port = free_port()
    printed = collector_env(receiver.dsn, listen=f"127.0.0.1:{port}")
    if form == "environment":
        rotel.start([], exports(printed, "ROTEL_"))
    else:
        rotel.start(rotel_command_args(printed), {})
    rotel.wait_until_listening(port)

    slc.configure(otlp_endpoint=f"http://127.0.0.1:{port}/v1/traces")
    handler = SentryCallbackHandler()
    answer = fake_chain().invoke(
        {"country": "France"},
        config={
            "callbacks": [handler],
            "metadata": {"user": "user_12345", "trace": {"trace_name": "Capital lookup", "team": "ml"}},
        },
    )
    assert answer == "Paris"
    assert slc.flush(10), slc.stats()
    spans = receiver.wait_for_spans(4, DELIVERY_TIMEOUT)  # the sequence, prompt, model and parser

    assert len(spans) == 4, [s.name for s in spans]
    trace = check_trace(spans, generations=1, usage=[(12, 3)])
    assert trace.root.name == "Capital lookup"
    for span in spans:
        assert span.attributes[attr.USER_ID] == "user_12345"
        assert span.attributes[attr.TRACE_METADATA_PREFIX + "team"] == "ml"
    assert {h["x-sentry-auth"] for h in receiver.headers} == {AUTH}


@pytest.mark.collector
def test_rotel_refuses_a_header_list_with_sentry_version(rotel: Rotel, receiver: LocalReceiver) -> None:
    env = exports(collector_env(receiver.dsn, listen=f"127.0.0.1:{free_port()}"), "ROTEL_")
    env["ROTEL_OTLP_EXPORTER_CUSTOM_HEADERS"] = f"X-Sentry-Auth={AUTH}, sentry_version=7"
    process = rotel.start([], env)
    assert process.wait(timeout=START_TIMEOUT) != 0
    assert "invalid HTTP header name" in rotel.output()
