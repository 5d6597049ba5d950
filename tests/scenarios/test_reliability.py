"""Nothing lost without a count, nothing hung: fork, load, hostile configuration, oversized
metadata, credentials in logs, multiprocessing children, precise messages, bounded memory."""

from __future__ import annotations

import dataclasses
import json
import logging
import multiprocessing
import socket
import subprocess
import sys
import threading
import types
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda

import sentry_llm_callbacks as slc
from sentry_llm_callbacks import _state
from sentry_llm_callbacks.core.metadata import CUT_MARKER, MAX_ID_CHARS, MAX_METADATA_CHARS
from sentry_llm_callbacks.devtools.receiver import DEFAULT_KEY, LocalReceiver, ReceivedSpan
from sentry_llm_callbacks.langchain import SentryCallbackHandler
from tests.support.environment import REPO_ROOT
from tests.support.fault_receiver import Fault, FaultyReceiver
from tests.support.forking import fork_traced_run, wait_or_kill
from tests.support.invariants import check_trace, check_traces
from tests.support.spans import delivered
from tests.support.waiting import wait_until

SPANS_PER_CHAIN = 4  # the sequence, the prompt, the model, the parser


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EchoModel(GenericFakeChatModel):
    """A fake chat model that answers forever, with usage (the stock one answers from an iterator)."""

    model_name: str = "echo-1"

    def __init__(self) -> None:
        super().__init__(messages=iter(()))

    def _generate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any) -> Any:
        from langchain_core.outputs import ChatGeneration, ChatResult

        usage = {"input_tokens": 7, "output_tokens": 3, "total_tokens": 10}
        message = AIMessage(content="5", usage_metadata=usage, response_metadata={"model_name": "echo-1"})
        return ChatResult(generations=[ChatGeneration(message=message)])


def make_chain() -> Any:
    prompt = ChatPromptTemplate.from_messages([("system", "Be terse."), ("human", "{q}")])
    return prompt | EchoModel() | StrOutputParser()


def traces_of(spans: list[ReceivedSpan]) -> dict[str, list[ReceivedSpan]]:
    groups: dict[str, list[ReceivedSpan]] = defaultdict(list)
    for span in spans:
        groups[span.trace_id].append(span)
    return groups


def assert_whole_chains(spans: list[ReceivedSpan]) -> int:
    """Every trace that arrived is a whole chain invocation; returns how many arrived."""
    groups = traces_of(spans)
    for group in groups.values():
        assert len(group) == SPANS_PER_CHAIN, f"a partial trace arrived: {[s.name for s in group]}"
        check_trace(group, generations=1, usage=[(7, 3)])
    return len(groups)


# --------------------------------------------------------------------------- fork


def _stop_langchain_importing_langchain_per_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """langchain-core 0.3's ``get_debug()`` and ``get_verbose()`` run ``import langchain`` on every
    invocation; without the ``langchain`` package each attempt takes importlib's lock for that
    name, and a child forked while another thread holds it waits for it forever, inside
    LangChain, with or without a tracer (Python does not renew per-module import locks in a
    child). What is tested here is our locks, so that import is made to find a module at once,
    as it does where ``langchain`` is installed. langchain-core 1.x no longer imports it.
    """
    from importlib.metadata import version

    if not version("langchain-core").startswith("0.") or "langchain" in sys.modules:
        return
    stand_in = types.ModuleType("langchain")
    stand_in.debug = False  # type: ignore[attr-defined]
    stand_in.verbose = False  # type: ignore[attr-defined]
    stand_in.llm_cache = None  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "langchain", stand_in)


def test_a_child_forked_while_threads_use_every_entry_point_traces_and_exits(
    sentry: LocalReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Prefork servers fork a traced parent at any moment; a lock held by another thread at that
    moment must not hang the child."""
    _stop_langchain_importing_langchain_per_call(monkeypatch)
    chain = RunnableLambda(lambda x: x + 1)
    handler = SentryCallbackHandler()
    stop = threading.Event()
    calls: list[int] = []  # per thread, how many calls it has finished

    def hammer(index: int, work: Callable[[], object]) -> None:
        while not stop.is_set():
            work()
            calls[index] += 1

    work: list[Callable[[], object]] = [
        slc.stats,
        lambda: slc.flush(timeout=0.001),
        lambda: slc.flush(timeout=-1),  # logs once, then at DEBUG: takes the log-once lock
        lambda: chain.invoke(1, config={"callbacks": [handler]}),
        lambda: _state.get_pipeline(),
    ]
    for w in work:  # imports done before forking, as a prefork server does: only our locks are at stake
        w()

    def each_moved_on(since: list[int]) -> Callable[[], bool]:
        return lambda: all(now > then for now, then in zip(calls, since, strict=True))

    hammered = [w for w in work for _ in range(2)]
    calls.extend(0 for _ in hammered)
    threads = [threading.Thread(target=hammer, args=(i, w), daemon=True) for i, w in enumerate(hammered)]
    for t in threads:
        t.start()
    outcomes = []
    try:
        for _ in range(6):
            # Fork while every thread is at work: each has finished another call since the last fork.
            assert wait_until(each_moved_on(list(calls)), timeout=15), f"a thread stalled: {calls}"
            outcomes.append(wait_or_kill(fork_traced_run("forked child"), 15))
    finally:
        stop.set()
        for t in threads:
            t.join(5)
    assert outcomes == [0] * 6, f"child exit codes (None: hung and killed): {outcomes}"
    children = [s for s in delivered(sentry) if s.name == "forked child"]
    assert len(children) == 6
    for span in children:
        check_trace([span])


# --------------------------------------------------------------------------- load


def run_burst(dsn: str, threads: int, invocations: int) -> None:
    """The burst, in a process of its own (as an app is: the receiver must not share its
    interpreter lock); prints whether the flush succeeded and the counters, as JSON. Default
    settings: the 4 MiB byte budget must hold the burst even when a thread that compresses, or
    the export thread in the middle of a request, waits seconds to get the interpreter lock back."""
    slc.configure(dsn=dsn)
    chain = make_chain()
    handler = SentryCallbackHandler()
    barrier = threading.Barrier(threads)

    def work() -> None:
        barrier.wait()
        for i in range(invocations):
            chain.invoke({"q": f"question {i}"}, config={"callbacks": [handler]})

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    print(json.dumps({"flushed": slc.flush(timeout=30), **slc.stats()}))


def test_a_burst_of_threads_sharing_one_handler_delivers_every_span(receiver: LocalReceiver) -> None:
    """Before: with 64 threads about half the spans were dropped (the export thread starved of
    the interpreter lock, the queue overflowing); now the threads encode and compress for
    themselves when behind. The burst of the issue (64 x 200), with default settings."""
    threads, invocations = 64, 200
    burst = f"run_burst({receiver.dsn!r}, {threads}, {invocations})"
    code = f"from tests.scenarios.test_reliability import run_burst; {burst}"
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    total = threads * invocations * SPANS_PER_CHAIN
    assert result["spans_dropped"] == 0, result
    assert result["flushed"] is True
    spans = receiver.wait_for_spans(total, timeout=30)
    assert len(spans) == total
    check_traces(spans, threads * invocations, generations=1, usage=[(7, 3)])


def test_at_the_backlog_bound_whole_traces_are_dropped_and_counted(receiver: FaultyReceiver) -> None:
    slc.configure(dsn=receiver.dsn, max_queue_size=60, max_batch_size=8)
    receiver.fault = Fault(hang=1.0)  # the export thread is stuck on its first request meanwhile
    chain = make_chain()
    handler = SentryCallbackHandler()
    before = slc.stats()["spans_dropped"]
    invocations = 100
    for i in range(invocations):
        chain.invoke({"q": str(i)}, config={"callbacks": [handler]})
    receiver.fault = None
    assert slc.flush(timeout=10) is False  # some spans were dropped: not everything was delivered
    spans = receiver.spans
    dropped = slc.stats()["spans_dropped"] - before
    assert dropped > 0
    assert len(spans) + dropped == invocations * SPANS_PER_CHAIN
    assert assert_whole_chains(spans) * SPANS_PER_CHAIN == len(spans)


def test_memory_while_the_endpoint_is_down_is_bounded_in_bytes(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()  # nothing listens: every connection is refused
    bound = 16 * 1024
    slc.configure(dsn=f"http://{DEFAULT_KEY}@127.0.0.1:{port}/1", max_queue_bytes=bound)
    pipeline = _state.get_pipeline()
    assert pipeline is not None
    processor = pipeline.processor
    chain = make_chain()
    handler = SentryCallbackHandler()
    before = slc.stats()
    invocations = 400
    highest = 0
    for i in range(invocations):
        chain.invoke({"q": "x" * 200 + str(i)}, config={"callbacks": [handler]})
        if i % 20 == 0:  # let the export thread encode and compress what is queued: wake it, wait for its pass
            worker = processor._worker
            with worker._idle:
                worker.wake.set()
                assert worker._idle.wait(5), "the export thread did not finish a pass"
        highest = max(highest, processor.queued_bytes)
    after = slc.stats()
    dropped = after["spans_dropped"] - before["spans_dropped"]
    assert highest <= bound * 1.25 + 8 * 1024, f"{highest} bytes held for a bound of {bound}"
    assert dropped > 0 and dropped % SPANS_PER_CHAIN == 0, f"{dropped} dropped: not whole traces"
    assert dropped + after["spans_queued"] == invocations * SPANS_PER_CHAIN
    assert any("backlog is full" in r.getMessage() for r in caplog.records)
    # The endpoint comes back: what was kept arrives, as whole traces.
    with LocalReceiver(port=port) as receiver:
        receiver.public_key, receiver.project_id = DEFAULT_KEY, "1"
        processor.backoff.success()
        kept = after["spans_queued"]
        assert slc.flush(timeout=10) is False  # False: spans were dropped since the last flush
        spans = receiver.wait_for_spans(kept, timeout=10)
    assert len(spans) == kept
    assert_whole_chains(spans)


# --------------------------------------------------------------------------- lost spans are counted


def _install_unchecked(receiver: LocalReceiver, **changes: Any) -> None:
    """A destination with values configure() now refuses: the export loop must still count
    whatever it cannot send, whatever the cause."""
    destination = slc.configure(dsn=receiver.dsn)
    _state.install(dataclasses.replace(destination, **changes))


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"headers": {"X-Team": "équipe \u20ac"}}, id="non-latin-1-header"),
        pytest.param({"export_timeout": float("inf")}, id="infinite-export-timeout"),
    ],
)
def test_a_request_that_cannot_be_built_counts_its_spans_as_dropped(
    receiver: LocalReceiver, changes: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    _install_unchecked(receiver, **changes)
    before = slc.stats()["spans_dropped"]
    chain = make_chain()
    for _ in range(3):
        chain.invoke({"q": "x"}, config={"callbacks": [SentryCallbackHandler()]})
    assert slc.flush(timeout=5) is False
    assert slc.stats()["spans_dropped"] - before == 3 * SPANS_PER_CHAIN
    assert slc.stats()["spans_queued"] == 0
    reasons = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Dropped")]
    assert any("could not be sent" in m for m in reasons), reasons
    assert receiver.spans == []


def test_a_rejection_logs_what_the_server_said(receiver: FaultyReceiver, caplog: pytest.LogCaptureFixture) -> None:
    slc.configure(dsn=receiver.dsn)
    receiver.fault = Fault(status=400, body='{"detail": "span attribute too long: gen_ai.prompt"}')
    make_chain().invoke({"q": "x"}, config={"callbacks": [SentryCallbackHandler()]})
    assert slc.flush(timeout=5) is False
    messages = [r.getMessage() for r in caplog.records]
    assert any("HTTP 400" in m and "span attribute too long: gen_ai.prompt" in m for m in messages), messages


# --------------------------------------------------------------------------- timeouts


@pytest.mark.parametrize("timeout", [float("inf"), float("nan"), -1, 0])
def test_flush_and_shutdown_never_raise_on_a_timeout(sentry: LocalReceiver, timeout: float) -> None:
    RunnableLambda(lambda x: x).invoke(1, config={"callbacks": [SentryCallbackHandler()]})
    result = slc.flush(timeout=timeout)
    assert isinstance(result, bool)
    if timeout == float("inf"):
        assert result is True and len(sentry.spans) == 1
    assert isinstance(slc.shutdown(timeout=timeout), bool)


@pytest.mark.parametrize("name", ["exit_timeout", "export_timeout", "run_timeout"])
@pytest.mark.parametrize("value", [float("inf"), float("nan")])
def test_non_finite_timeouts_are_a_configuration_error(name: str, value: float) -> None:
    with pytest.raises(slc.ConfigurationError) as raised:
        slc.configure(dsn="https://key@o1.ingest.sentry.io/1", **{name: value})
    assert raised.value.field == name
    assert "finite" in str(raised.value)


# --------------------------------------------------------------------------- configuration

DSN = "https://PUBLICKEY@o1.ingest.sentry.io/456"


@pytest.mark.parametrize(
    ("kwargs", "field", "says"),
    [
        ({"dsn": "https://KEY@o1.ingest.sentry.io/\uff14\uff15\uff16"}, "dsn", "must be a number"),
        ({"dsn": "https://KEY@o1.ingest.sentry.io/\u00b2"}, "dsn", "must be a number"),
        ({"dsn": "https://KEY@o1.ingest. sentry.io/456"}, "dsn", "not a valid host name"),
        ({"otlp_endpoint": "https://o1.ingest. sentry.io/api/1/integration/otlp/v1/traces"}, "otlp_endpoint", "host"),
        ({"dsn": DSN, "headers": {"Bad Header": "v"}}, "headers", "no space or colon"),
        ({"dsn": DSN, "headers": {"X:Y": "v"}}, "headers", "no space or colon"),
        ({"dsn": DSN, "headers": {"X-Team": "\u20ac"}}, "headers", "Latin-1"),
        ({"dsn": DSN, "privacy_mode": "false"}, "privacy_mode", "True or False"),
        ({"dsn": DSN, "privacy_mode": 1}, "privacy_mode", "True or False"),
        ({"dsn": 12345}, "dsn", "must be a string"),
        ({"dsn": DSN, "max_queue_bytes": 0}, "max_queue_bytes", "positive integer"),
    ],
)
def test_configuration_that_used_to_be_accepted_is_refused(kwargs: dict[str, Any], field: str, says: str) -> None:
    with pytest.raises(slc.ConfigurationError) as raised:
        slc.configure(**kwargs)
    assert raised.value.field == field
    assert says in str(raised.value)
    assert raised.value.example  # a right value to copy


def test_valid_configuration_is_still_accepted() -> None:
    destination = slc.configure(
        dsn="https://PUBLICKEY@o1.ingest.us.sentry.io/456",
        headers={"X-Team": "équipe", "Authorization": "Bearer t0k"},
        privacy_mode=False,
    )
    assert destination.project_id == "456"
    assert slc.configure(otlp_endpoint="http://[::1]:4318/v1/traces").host == "[::1]:4318"


# --------------------------------------------------------------------------- oversized metadata


def test_oversized_metadata_is_capped_and_the_trace_is_sent(
    sentry: LocalReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    huge = "z" * (10 * 1024 * 1024)
    metadata = {
        "user": "u" * 5000,
        "session_id": "s" * 5000,
        "trace": {
            "trace_id": huge,
            "trace_name": "n" * 5000,
            "team": "t" * 100_000,
            "blob": {"rows": ["r" * 1000] * 100},
            "k" * 500: "v",
        },
    }
    make_chain().invoke({"q": "x"}, config={"callbacks": [SentryCallbackHandler()], "metadata": metadata})
    spans = delivered(sentry, SPANS_PER_CHAIN)
    assert len(spans) == SPANS_PER_CHAIN
    check_trace(spans, generations=1, usage=[(7, 3)])
    assert spans[0].trace_id == slc.trace_id_for(huge)  # the id is computed from the whole string
    for span in spans:
        a = span.attributes
        assert a["user.id"].endswith(CUT_MARKER) and len(a["user.id"]) == MAX_ID_CHARS
        assert a["gen_ai.conversation.id"].endswith(CUT_MARKER)
        for key in ("trace.metadata.trace_id", "trace.metadata.team", "trace.metadata.blob"):
            assert a[key].endswith(CUT_MARKER) and len(a[key]) == MAX_METADATA_CHARS, key
        assert all(len(k) <= 200 for k in a)
    assert sum(len(body) for body in sentry.bodies) < 200_000
    assert any("cut to" in r.getMessage() for r in caplog.records)


# --------------------------------------------------------------------------- credentials in logs


def test_credentials_in_an_endpoint_never_reach_a_log_record(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    user_key, query_key = "USERINFOKEY5e1f", "QUERYKEY9a7c3d"
    ours = [r for r in caplog.records]

    def endpoint(port: int) -> str:
        return f"http://user:{user_key}@127.0.0.1:{port}/v1/traces?sentry_key={query_key}&team=ml"

    with FaultyReceiver() as receiver:
        for fault in (Fault(status=503), Fault(status=400, body='{"detail": "bad"}'), Fault(status=413)):
            receiver.fault = fault
            slc.configure(otlp_endpoint=endpoint(receiver.port))
            make_chain().invoke({"q": "x"}, config={"callbacks": [SentryCallbackHandler()]})
            slc.flush(timeout=1)
            result = slc.test_connection(otlp_endpoint=endpoint(receiver.port))
            assert user_key not in result.message and query_key not in result.message
            assert user_key not in repr(result) and query_key not in repr(result)
    destination = slc.configure(otlp_endpoint=endpoint(free_port()))  # refused
    assert user_key not in repr(destination) and query_key not in repr(destination)
    make_chain().invoke({"q": "x"}, config={"callbacks": [SentryCallbackHandler()]})
    slc.flush(timeout=1)
    slc.shutdown(timeout=0.2)
    ours = [r for r in caplog.records if r.name.startswith("sentry_llm_callbacks")]
    assert any("127.0.0.1" in r.getMessage() for r in ours)  # endpoints are logged, redacted
    for record in caplog.records:
        # urllib3 logs its request line (with the query) at DEBUG; ours never carry either key
        keys = (user_key, query_key) if record.name.startswith("sentry_llm_callbacks") else (user_key,)
        text = record.getMessage() + repr(record.args)
        assert not any(key in text for key in keys), f"{record.name}: {text}"


# --------------------------------------------------------------------------- Privacy Mode: tools


def test_privacy_mode_does_not_send_tool_descriptions(receiver: LocalReceiver) -> None:
    planted = "SECRET-TOOLDESC-61c2"

    from langchain_core.tools import StructuredTool

    def find_order(order_id: str) -> str:
        return "shipped"

    lookup_order = StructuredTool.from_function(
        find_order, name="lookup_order", description=f"Looks up an order. Internal routing hint: {planted}."
    )

    from langgraph.prebuilt import create_react_agent

    from tests.support.langchain_models import ToolCallingFake

    for private in (False, True):
        receiver.clear()
        slc.configure(dsn=receiver.dsn, privacy_mode=private)
        tool_call = AIMessage(content="", tool_calls=[{"name": "lookup_order", "args": {"order_id": "7"}, "id": "c1"}])
        model = ToolCallingFake(messages=iter([tool_call, AIMessage(content="It shipped.")]))
        agent = create_react_agent(model, [lookup_order])
        agent.invoke({"messages": [("human", "Where is order 7?")]}, config={"callbacks": [SentryCallbackHandler()]})
        spans = delivered(receiver)
        tool_spans = [s for s in spans if s.op == "gen_ai.execute_tool"]
        assert tool_spans and tool_spans[0].attributes["gen_ai.tool.name"] == "lookup_order"
        raw = b"".join(receiver.bodies)
        assert (planted.encode() in raw) is not private, f"privacy_mode={private}"


# --------------------------------------------------------------------------- multiprocessing


def traced_work(count: int) -> int:
    """Runs in a multiprocessing child (importable, for the spawn start method)."""
    chain = RunnableLambda(lambda x: x + 1)
    for i in range(count):
        chain.invoke(i, config={"callbacks": [SentryCallbackHandler()], "run_name": "child run"})
    return count


@pytest.fixture
def env_dsn(receiver: LocalReceiver, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalReceiver]:
    """Children started with spawn read the destination from the environment."""
    monkeypatch.setenv("SENTRY_DSN", receiver.dsn)
    yield receiver


def _child_spans(receiver: LocalReceiver, count: int) -> list[ReceivedSpan]:
    def arrived() -> list[ReceivedSpan]:
        return [s for s in receiver.spans if s.name == "child run"]

    wait_until(lambda: len(arrived()) >= count, timeout=10)
    return arrived()


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_a_process_child_delivers_its_spans_without_a_flush(env_dsn: LocalReceiver, method: str) -> None:
    context = multiprocessing.get_context(method)
    process = context.Process(target=traced_work, args=(4,))
    process.start()
    process.join(30)
    assert process.exitcode == 0
    spans = _child_spans(env_dsn, 4)  # delivered before the child exited: nothing flushes for it
    assert len(spans) == 4
    check_traces(spans, 4)


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_pool_workers_deliver_their_spans_without_a_flush(env_dsn: LocalReceiver, method: str) -> None:
    context = multiprocessing.get_context(method)
    pool = context.Pool(2)
    try:
        assert pool.map(traced_work, [4, 4, 4, 4]) == [4, 4, 4, 4]
        pool.close()  # workers end normally (terminate() would kill them before any exit hook)
        pool.join()
    finally:
        pool.terminate()
    spans = _child_spans(env_dsn, 16)
    assert len(spans) == 16
    check_traces(spans, 16)


# --------------------------------------------------------------------------- precise messages


def test_connection_says_413_is_the_body_limit(receiver: FaultyReceiver) -> None:
    receiver.fault = Fault(status=413)
    result = slc.test_connection(dsn=receiver.dsn)
    assert not result.ok and result.status_code == 413 and result.reason == "invalid_config"
    assert "body limit" in result.message
    assert "OTLP" not in result.message


def test_connection_shows_a_400s_error_body_without_secrets(receiver: FaultyReceiver) -> None:
    receiver.fault = Fault(status=400, body=f'{{"detail": "invalid auth header sentry_key={DEFAULT_KEY}"}}')
    result = slc.test_connection(dsn=receiver.dsn)
    assert result.status_code == 400
    assert "invalid auth header" in result.message
    assert DEFAULT_KEY not in result.message
