"""Sampling over the wire: the head rate, the parent's decision, and tail rules that keep errored,
slow and costly traces whole at any rate, within a bounded buffer."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableConfig, RunnableLambda
from langchain_core.tools import tool

import sentry_llm_callbacks as slc
from sentry_llm_callbacks import _state
from sentry_llm_callbacks.config.keep import MAX_BUFFERED_BYTES, KeepRules
from sentry_llm_callbacks.core import sampling
from sentry_llm_callbacks.devtools.receiver import LocalReceiver, ReceivedSpan
from sentry_llm_callbacks.export.taps import TAPS
from sentry_llm_callbacks.langchain import SentryCallbackHandler
from tests.support.invariants import check_trace, check_traces
from tests.support.langchain_models import ToolCallingFake, fake_model, simple_chain
from tests.support.spans import delivered

RATE = "sentry.client_sample_rate"
#: Rules that no cheap, fast, clean trace meets.
STRICT = {"errors": True, "slower_than": 3600.0, "costlier_than": 1000.0}
SPANS_PER_CHAIN = 4  # prompt | model | parser, under the sequence
STEP_CHAIN_SPANS = 5  # the same with a step before the prompt (one flat sequence)


def counts() -> dict[str, int]:
    return slc.stats()


def delta(before: dict[str, int], name: str) -> int:
    return slc.stats()[name] - before[name]


def buffered() -> tuple[int, int]:
    """Spans and estimated bytes the current pipeline's pending traces hold."""
    target = _state._target
    return target.sampling.buffered if target is not None else (0, 0)


def chain_with_step(step: Any, *, usage: dict[str, int] | None = None) -> Any:
    """``step`` (a function of the question and the run's config), then prompt | model | parser."""
    model = fake_model("answer", usage=usage)
    return RunnableLambda(step).with_config(run_name="Prepare") | simple_chain(model)


def absorb_a_failure(question: str, config: RunnableConfig) -> dict[str, str]:
    """A step that calls a tool which fails, and carries on without it (the user sees no error)."""
    with contextlib.suppress(ValueError):
        flaky_lookup.invoke({"query": question}, config=config)
    return {"question": question}


@tool
def flaky_lookup(query: str) -> str:
    """Look something up in a service that is down."""
    raise ValueError(f"lookup of {query} failed")


def plain(question: str) -> dict[str, str]:
    return {"question": question}


def invoke(chain: Any, question: str = "q", **config: Any) -> Any:
    return chain.invoke(question, config={"callbacks": [SentryCallbackHandler()], **config})


# --------------------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    ("keep", "says"),
    [
        ({"error": True}, "unknown rule 'error'"),
        ({"errors": "yes"}, "'errors' must be True or False"),
        ({"slower_than": -1}, "'slower_than' must be a finite number of seconds, 0 or more"),
        ({"slower_than": True}, "'slower_than' must be a finite number"),
        ({"costlier_than": math.nan}, "'costlier_than' must be a finite number of USD"),
        ({"costlier_than": "0.05"}, "'costlier_than' must be a finite number"),
        ({"errors": True, "max_buffered_spans": 0}, "'max_buffered_spans' must be a positive integer"),
        ({"errors": True, "max_buffered_bytes": 1.5}, "'max_buffered_bytes' must be a positive integer"),
        (["errors"], "must be a dict of rules"),
    ],
)
def test_bad_keep_rules_name_the_field_and_an_example(keep: Any, says: str) -> None:
    with pytest.raises(slc.ConfigurationError) as caught:
        slc.configure(dsn="https://k@o1.ingest.sentry.io/1", keep=keep)
    assert caught.value.field == "keep"
    assert says in str(caught.value)
    assert "Example of a valid value: {" in str(caught.value)


def test_keep_rules_are_validated_into_an_immutable_value() -> None:
    destination = slc.configure(
        dsn="https://k@o1.ingest.sentry.io/1", sample_rate=0.1, keep={"errors": True, "costlier_than": 0}
    )
    rules = destination.keep
    assert rules == KeepRules(errors=True, costlier_than=0.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        rules.errors = False  # type: ignore[misc]
    assert slc.configure(dsn="https://k@o1.ingest.sentry.io/1").keep is None
    assert slc.configure(dsn="https://k@o1.ingest.sentry.io/1", keep={"errors": False}).keep is None


# --------------------------------------------------------------------------- the head decision


@pytest.mark.parametrize("keep", [None, STRICT], ids=["head-only", "with-tail-rules"])
def test_head_rate_is_honoured_within_binomial_bounds_over_2000_traces(
    receiver: LocalReceiver, keep: dict[str, Any] | None
) -> None:
    rate, n = 0.25, 2000
    slc.configure(dsn=receiver.dsn, sample_rate=rate, keep=keep)
    model = GenericFakeChatModel(messages=iter([AIMessage(content=str(i)) for i in range(n)]))
    chain = simple_chain(model)
    handler = SentryCallbackHandler()
    before = counts()
    for i in range(n):
        chain.invoke({"question": str(i)}, config={"callbacks": [handler]})
    spans = delivered(receiver)
    kept = len({s.trace_id for s in spans})
    sigma = math.sqrt(n * rate * (1 - rate))
    assert abs(kept - n * rate) <= 5 * sigma, f"{kept} of {n} traces kept at rate {rate}"
    check_traces(spans, kept, generations=1)
    assert all(s.attributes[RATE] == rate for s in spans)
    assert delta(before, "traces_kept_by_head") == kept
    assert delta(before, "traces_dropped_by_sampling") == n - kept
    assert delta(before, "spans_dropped") == (n - kept) * SPANS_PER_CHAIN
    assert buffered() == (0, 0)


# --------------------------------------------------------------------------- tail rules at rate 0


def test_errored_trace_is_kept_whole_at_rate_zero(receiver: LocalReceiver) -> None:
    slc.configure(dsn=receiver.dsn, sample_rate=0.0, keep=STRICT)
    before = counts()
    assert invoke(chain_with_step(absorb_a_failure)) == "answer"  # the user saw no error
    invoke(chain_with_step(plain))  # clean, fast and free: dropped
    spans = delivered(receiver)
    trace = check_trace(spans, generations=1)
    failed = trace.with_op("gen_ai.execute_tool")[0]
    assert failed.status_code == 2 and failed.attributes["error.type"] == "ValueError"
    assert trace.parent(failed).name == "Prepare"
    assert len(spans) == STEP_CHAIN_SPANS + 1  # and the failed tool under Prepare
    assert all(s.attributes[RATE] == 1.0 for s in spans)
    assert delta(before, "traces_kept_by_errors") == 1
    assert delta(before, "traces_dropped_by_sampling") == 1
    assert buffered() == (0, 0)


def test_trace_the_user_saw_fail_is_kept(receiver: LocalReceiver) -> None:
    slc.configure(dsn=receiver.dsn, sample_rate=0.0, keep=STRICT)

    def fail(question: str) -> str:
        raise RuntimeError("bad input")

    with pytest.raises(RuntimeError):
        invoke(chain_with_step(fail))
    trace = check_trace(delivered(receiver), root_error=True, generations=0)
    assert trace.named("Prepare").status_code == 2
    assert all(s.attributes[RATE] == 1.0 for s in trace.spans)


def test_langgraph_agent_whose_tool_failed_is_kept_whole(receiver: LocalReceiver) -> None:
    from langgraph.prebuilt import ToolNode, create_react_agent

    slc.configure(dsn=receiver.dsn, sample_rate=0.0, keep={"errors": True})
    messages = iter(
        [
            AIMessage(content="", tool_calls=[{"name": "flaky_lookup", "args": {"query": "x"}, "id": "c1"}]),
            AIMessage(content="The lookup is down."),
        ]
    )
    tools = ToolNode([flaky_lookup], handle_tool_errors=True)  # the error goes back to the model as a message
    agent = create_react_agent(ToolCallingFake(messages=messages), tools)
    before = counts()
    result = agent.invoke({"messages": [("human", "look up x")]}, config={"callbacks": [SentryCallbackHandler()]})
    assert result["messages"][-1].content == "The lookup is down."
    spans = delivered(receiver)
    trace = check_trace(spans, generations=2)
    assert trace.root.op == "gen_ai.invoke_agent"
    assert [s.status_code for s in trace.with_op("gen_ai.execute_tool")] == [2]
    assert all(s.attributes[RATE] == 1.0 for s in spans)
    assert delta(before, "traces_kept_by_errors") == 1
    assert delta(before, "spans_exported") == len(spans)


def test_slow_trace_is_kept_at_rate_zero(receiver: LocalReceiver) -> None:
    slc.configure(dsn=receiver.dsn, sample_rate=0.0, keep={"slower_than": 0.05})

    def slow(question: str) -> dict[str, str]:
        time.sleep(0.06)  # just over the threshold: the rule under test is about duration
        return {"question": question}

    before = counts()
    invoke(chain_with_step(slow))
    trace = check_trace(delivered(receiver), generations=1)
    assert (trace.root.end_ns - trace.root.start_ns) / 1e9 > 0.05
    assert all(s.attributes[RATE] == 1.0 for s in trace.spans)
    assert delta(before, "traces_kept_by_slower_than") == 1


def test_costly_trace_is_kept_and_a_cheap_one_dropped(receiver: LocalReceiver) -> None:
    slc.configure(
        dsn=receiver.dsn,
        sample_rate=0.0,
        keep={"costlier_than": 0.05},
        pricing={"fake-chat": {"input": 0.001, "output": 0.002}},
    )
    before = counts()
    costly = {"input_tokens": 40, "output_tokens": 10, "total_tokens": 50}  # 0.06 USD
    cheap = {"input_tokens": 4, "output_tokens": 1, "total_tokens": 5}  # 0.006 USD
    invoke(chain_with_step(plain, usage=costly))
    invoke(chain_with_step(plain, usage=cheap))
    spans = delivered(receiver)
    trace = check_trace(spans, generations=1, usage=[(40, 10)])
    assert trace.generations[0].attributes["gen_ai.cost.total_tokens"] == pytest.approx(0.06)
    assert all(s.attributes[RATE] == 1.0 for s in spans)
    assert delta(before, "traces_kept_by_costlier_than") == 1
    assert delta(before, "traces_dropped_by_sampling") == 1


def test_undecided_cheap_traces_are_dropped_and_counted(receiver: LocalReceiver) -> None:
    slc.configure(dsn=receiver.dsn, sample_rate=0.0, keep=STRICT)
    before = counts()
    for _ in range(20):
        invoke(chain_with_step(plain))
    assert slc.flush(5)
    assert receiver.spans == []
    per_trace = STEP_CHAIN_SPANS
    assert delta(before, "traces_dropped_by_sampling") == 20
    assert delta(before, "spans_started") == 20 * per_trace  # recorded while undecided
    assert delta(before, "spans_dropped") == 20 * per_trace
    assert delta(before, "spans_exported") == 0
    assert buffered() == (0, 0)
    invoke(chain_with_step(absorb_a_failure))  # the same pipeline still sends what a rule keeps
    check_trace(delivered(receiver), generations=1)


def test_a_head_sampled_trace_a_rule_keeps_carries_rate_one(receiver: LocalReceiver) -> None:
    """Its inclusion probability was 1, whatever the head said: Sentry must count it once."""
    slc.configure(dsn=receiver.dsn, sample_rate=0.999999, keep={"errors": True})
    before = counts()
    invoke(chain_with_step(absorb_a_failure))
    invoke(chain_with_step(plain))
    traces = check_traces(delivered(receiver), 2, generations=1)
    errored, clean = sorted(traces, key=lambda t: len(t.spans), reverse=True)
    assert {s.attributes[RATE] for s in errored.spans} == {1.0}
    assert {s.attributes[RATE] for s in clean.spans} == {0.999999}
    assert delta(before, "traces_kept_by_errors") == 1 and delta(before, "traces_kept_by_head") == 1


# --------------------------------------------------------------------------- the parent's decision


def test_sampled_ambient_opentelemetry_parent_is_followed_at_rate_zero(receiver: LocalReceiver) -> None:
    from opentelemetry.sdk.trace import TracerProvider

    slc.configure(dsn=receiver.dsn, sample_rate=0.0, keep=STRICT)
    before = counts()
    with TracerProvider().get_tracer("app").start_as_current_span("POST /ask") as app_span:
        invoke(chain_with_step(plain))
    app_context = app_span.get_span_context()
    trace = check_trace(delivered(receiver), remote_parent=format(app_context.span_id, "016x"), generations=1)
    assert trace.trace_id == format(app_context.trace_id, "032x")
    assert len(trace.spans) == STEP_CHAIN_SPANS
    # Sent because the parent was sampled: counted once, as sentry-sdk counts an inherited
    # decision (our 0.0 would have Sentry multiply by infinity).
    assert all(s.attributes[RATE] == 1.0 for s in trace.spans)
    assert delta(before, "traces_kept_by_parent") == 1
    assert delta(before, "traces_dropped_by_sampling") == 0


def test_unsampled_ambient_parent_leaves_the_decision_to_us(receiver: LocalReceiver) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

    slc.configure(dsn=receiver.dsn, sample_rate=0.0, keep=STRICT)
    with TracerProvider(sampler=ALWAYS_OFF).get_tracer("app").start_as_current_span("POST /ask") as app_span:
        invoke(chain_with_step(plain))
        invoke(chain_with_step(absorb_a_failure))
    trace = check_trace(delivered(receiver), generations=1)  # the errored one, as a root of the app's trace id
    assert trace.trace_id == format(app_span.get_span_context().trace_id, "032x")
    assert trace.with_op("gen_ai.execute_tool")[0].status_code == 2


# --------------------------------------------------------------------------- decisions and buffers


@pytest.fixture
def span_taps() -> Iterator[list[str]]:
    """Names of spans as they are handed to the export queue."""
    seen: list[str] = []

    def tap(span: Any) -> None:
        seen.append(span.name)

    TAPS.add(tap)
    yield seen
    TAPS.remove(tap)


@pytest.mark.parametrize(
    ("rate", "keep", "waits"),
    [(1.0, STRICT, False), (0.5, None, False), (0.999999, STRICT, True)],
    ids=["rate-one-with-rules", "head-only", "pending"],
)
def test_spans_wait_only_when_there_is_something_to_decide(
    receiver: LocalReceiver, span_taps: list[str], rate: float, keep: dict[str, Any] | None, waits: bool
) -> None:
    slc.configure(dsn=receiver.dsn, sample_rate=rate, keep=keep)
    handed_over_inside: list[bool] = []

    def look(question: str, config: RunnableConfig) -> dict[str, str]:
        RunnableLambda(plain).with_config(run_name="Inner").invoke(question, config=config)
        handed_over_inside.append("Inner" in span_taps)
        return {"question": question}

    metadata = {"trace": {"trace_id": "0" * 31 + "1"}}  # sampled at any rate above 0
    invoke(chain_with_step(look), metadata=metadata)
    assert handed_over_inside == [not waits]
    assert buffered() == (0, 0)
    check_trace(delivered(receiver), generations=1)


def test_late_children_follow_the_decision_of_their_root(receiver: LocalReceiver) -> None:
    slc.configure(dsn=receiver.dsn, sample_rate=0.0, keep={"errors": True})
    handler = SentryCallbackHandler()
    root, failed, late = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    handler.on_chain_start({}, {"q": 1}, run_id=root, name="Answer")
    handler.on_chain_start({}, {"q": 1}, run_id=failed, parent_run_id=root, name="Lookup")
    handler.on_chain_error(ValueError("down"), run_id=failed, parent_run_id=root)
    handler.on_chain_start({}, {"q": 1}, run_id=late, parent_run_id=root, name="Stream")
    handler.on_chain_end({"a": 2}, run_id=root)  # decided here: kept for the error
    assert buffered() == (0, 0)
    handler.on_chain_end({"a": 3}, run_id=late, parent_run_id=root)
    trace = check_trace(delivered(receiver, 3), lazy=("Stream",))
    assert sorted(s.name for s in trace.spans) == ["Answer", "Lookup", "Stream"]
    assert all(s.attributes[RATE] == 1.0 for s in trace.spans)


def test_late_children_of_a_dropped_trace_are_dropped(receiver: LocalReceiver) -> None:
    slc.configure(dsn=receiver.dsn, sample_rate=0.0, keep={"errors": True})
    handler = SentryCallbackHandler()
    root, late = uuid.uuid4(), uuid.uuid4()
    before = counts()
    handler.on_chain_start({}, {"q": 1}, run_id=root, name="Answer")
    handler.on_chain_start({}, {"q": 1}, run_id=late, parent_run_id=root, name="Stream")
    handler.on_chain_end({"a": 2}, run_id=root)  # decided here: dropped
    handler.on_chain_error(ValueError("too late"), run_id=late, parent_run_id=root)
    assert slc.flush(5) and receiver.spans == []
    assert delta(before, "spans_dropped") == 2 and delta(before, "traces_dropped_by_sampling") == 1


def steps_after(first: Any, count: int, seen: list[int]) -> Any:
    """A step that runs ``first`` then ``count`` small steps, noting the buffer's size after each."""

    def work(question: str, config: RunnableConfig) -> dict[str, str]:
        first(question, config)
        for i in range(count):
            RunnableLambda(plain).with_config(run_name=f"Step {i}").invoke(question, config=config)
            seen.append(buffered()[0])
        return {"question": question}

    return work


@pytest.mark.parametrize(
    ("first", "kept"), [(absorb_a_failure, True), (lambda q, c: plain(q), False)], ids=["errored", "clean"]
)
def test_span_bound_decides_early_with_what_is_known(receiver: LocalReceiver, first: Any, kept: bool) -> None:
    slc.configure(dsn=receiver.dsn, sample_rate=0.0, keep={"errors": True, "max_buffered_spans": 3})
    seen: list[int] = []
    before = counts()
    invoke(chain_with_step(steps_after(first, 6, seen)))
    assert max(seen) <= 3 and seen[-1] == 0  # bounded, then decided: later spans follow at once
    assert delta(before, "traces_decided_early") == 1
    spans = delivered(receiver)
    if kept:
        trace = check_trace(spans, generations=1)  # whole: buffered, decided early, then late spans
        assert len(trace.spans) == STEP_CHAIN_SPANS + 1 + 6
        assert all(s.attributes[RATE] == 1.0 for s in spans)
        assert delta(before, "traces_kept_by_errors") == 1
    else:
        assert spans == []
        assert delta(before, "traces_dropped_by_sampling") == 1
    assert buffered() == (0, 0)


def test_byte_bound_decides_early(receiver: LocalReceiver) -> None:
    budget = 4 * sampling.SPAN_OVERHEAD_BYTES
    slc.configure(dsn=receiver.dsn, sample_rate=0.0, keep={"errors": True, "max_buffered_bytes": budget})
    seen_bytes: list[int] = []

    def work(question: str, config: RunnableConfig) -> dict[str, str]:
        absorb_a_failure(question, config)
        for i in range(6):
            RunnableLambda(plain).with_config(run_name=f"Step {i}").invoke(question, config=config)
            seen_bytes.append(buffered()[1])
        return {"question": question}

    before = counts()
    invoke(chain_with_step(work))
    assert max(seen_bytes) <= budget
    assert delta(before, "traces_decided_early") == 1 and delta(before, "traces_kept_by_errors") == 1
    check_trace(delivered(receiver), generations=1)
    assert buffered() == (0, 0)


def test_buffer_estimate_counts_strings_and_content_by_what_it_holds_at_most_the_limit() -> None:
    from sentry_llm_callbacks.core.content import ContentPolicy, LazyContent

    policy = ContentPolicy(max_chars=100)
    attrs = {
        "name": "x" * 10,
        "number": 12,
        "short": LazyContent("y" * 30, policy),
        "long": LazyContent("z" * 500, policy),
        "object": LazyContent({"messages": ["..."]}, policy),
    }
    held = sampling.content_size({"messages": ["..."]}, 100)
    assert len("messages") + len("...") <= held < 100  # what the object holds, not the limit
    assert sampling.estimate_bytes(attrs) == sampling.SPAN_OVERHEAD_BYTES + 10 + 30 + 100 + held


@pytest.mark.parametrize(("keep", "kept"), [({"errors": True}, True), ({"slower_than": 3600.0}, False)])
def test_reaper_decides_a_trace_whose_root_never_ends(
    receiver: LocalReceiver, keep: dict[str, Any], kept: bool
) -> None:
    slc.configure(dsn=receiver.dsn, sample_rate=0.0, keep=keep)
    handler = SentryCallbackHandler()
    root, child = uuid.uuid4(), uuid.uuid4()
    before = counts()
    handler.on_chain_start({}, {"q": 1}, run_id=root, name="Never ends")
    handler.on_chain_start({}, {"q": 1}, run_id=child, parent_run_id=root, name="Done")
    handler.on_chain_end({"a": 1}, run_id=child, parent_run_id=root)
    assert slc.flush(5) and receiver.spans == []
    assert buffered()[0] == 1
    assert _state.recorder.reap(60.0, now=time.monotonic() + 120.0) == 1  # as the recorder's reaper timer does
    assert buffered() == (0, 0)
    spans = delivered(receiver)
    if kept:
        trace = check_trace(spans, root_error=True)  # abandoned: ERROR, which the errors rule keeps
        assert trace.root.status_message == "abandoned" and len(spans) == 2
        assert delta(before, "traces_kept_by_errors") == 1
    else:
        assert spans == []
        assert delta(before, "traces_dropped_by_sampling") == 1 and delta(before, "spans_dropped") == 2


@pytest.mark.parametrize("closing", ["shutdown", "configure"])
def test_spans_waiting_for_a_root_still_open_when_the_pipeline_closes_are_decided(
    receiver: LocalReceiver, closing: str
) -> None:
    slc.configure(dsn=receiver.dsn, sample_rate=0.0, keep={"errors": True})
    handler = SentryCallbackHandler()
    root, child, failed = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    before = counts()
    handler.on_chain_start({}, {"q": 1}, run_id=root, name="Still running")
    handler.on_chain_start({}, {"q": 1}, run_id=child, parent_run_id=root, name="Done")
    handler.on_chain_end({"a": 1}, run_id=child, parent_run_id=root)
    handler.on_chain_start({}, {"q": 1}, run_id=failed, parent_run_id=root, name="Failed")
    handler.on_chain_error(ValueError("absorbed"), run_id=failed, parent_run_id=root)
    assert buffered()[0] == 2
    if closing == "shutdown":
        assert slc.shutdown(5)
    else:
        slc.configure(dsn=receiver.dsn)  # the old pipeline is retired in the background
    assert buffered() == (0, 0)
    spans = receiver.wait_for_spans(2)
    assert sorted(s.name for s in spans) == ["Done", "Failed"]  # an error was seen: kept by the rule
    assert delta(before, "traces_kept_by_errors") == 1 and delta(before, "traces_decided_early") == 1
    handler.on_chain_end({"a": 1}, run_id=root)  # the root ends after its pipeline closed: counted


def test_many_threads_deciding_traces_at_once(receiver: LocalReceiver) -> None:
    slc.configure(dsn=receiver.dsn, sample_rate=0.0, keep={"errors": True, "max_buffered_spans": 10_000})
    threads, per_thread = 8, 25
    failures: list[BaseException] = []
    before = counts()

    def worker(t: int) -> None:
        try:
            for i in range(per_thread):
                invoke(chain_with_step(absorb_a_failure if i % 5 == 0 else plain), question=f"{t}-{i}")
        except BaseException as exc:
            failures.append(exc)

    pool = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    assert not failures
    errored = threads * per_thread // 5
    traces = check_traces(delivered(receiver), errored, generations=1)
    assert all(len(t.spans) == STEP_CHAIN_SPANS + 1 for t in traces)
    assert delta(before, "traces_kept_by_errors") == errored
    assert delta(before, "traces_dropped_by_sampling") == threads * per_thread - errored
    assert buffered() == (0, 0)


def received_rates(spans: list[ReceivedSpan]) -> set[Any]:
    return {s.attributes.get(RATE) for s in spans}


def test_privacy_mode_trace_kept_by_a_rule_sends_no_content(receiver: LocalReceiver) -> None:
    slc.configure(dsn=receiver.dsn, sample_rate=0.0, keep={"errors": True}, privacy_mode=True)
    invoke(chain_with_step(absorb_a_failure), question="my secret question")
    spans = delivered(receiver)
    check_trace(spans, generations=1)
    assert received_rates(spans) == {1.0}
    assert b"my secret question" not in b"".join(receiver.bodies)


# --------------------------------------------------------------------------- bounds and counters


def test_an_errored_trace_of_thousands_of_tiny_spans_is_kept_whole_at_the_default_bounds(
    receiver: LocalReceiver,
) -> None:
    """2,000 one-character runs and an error a fallback absorbs: well inside the default 20,000
    spans and 64 MiB, so the errors rule decides at the root and keeps every span."""
    slc.configure(dsn=receiver.dsn, sample_rate=0.0, keep={"errors": True})
    before = counts()
    tiny = RunnableLambda(lambda x: x, name="tiny")

    def down(x: str) -> str:
        raise ConnectionError("primary is down")

    fallback = RunnableLambda(down, name="primary").with_fallbacks([RunnableLambda(lambda x: "b", name="backup")])

    def job(x: str, config: RunnableConfig) -> str:
        for _ in range(2000):
            tiny.invoke({"q": "a"}, config=config)  # a one-character input and output, as dicts
        return fallback.invoke("a", config=config)

    assert RunnableLambda(job, name="job").invoke("a", config={"callbacks": [SentryCallbackHandler()]}) == "b"
    trace = check_trace(delivered(receiver))
    assert len([s for s in trace.spans if s.name == "tiny"]) == 2000
    assert len(trace.spans) == 2000 + 4  # job, the fallbacks run, primary, backup
    assert delta(before, "traces_kept_by_errors") == 1
    assert delta(before, "traces_decided_early") == 0
    assert delta(before, "spans_dropped") == 0


def test_a_tiny_span_is_estimated_by_what_it_holds() -> None:
    """Captured content that is not a string is measured, not counted at the content limit."""
    from sentry_llm_callbacks.core.content import ContentPolicy, LazyContent

    policy = ContentPolicy(private=False, max_chars=20_000, mask=None)
    tiny = sampling.estimate_bytes({"input": LazyContent({"x": "a"}, policy), "name": "tiny"})
    assert tiny < sampling.SPAN_OVERHEAD_BYTES + 100
    # the README's 20,000-span default is reachable by ordinary spans within the default bytes
    assert 20_000 * tiny < MAX_BUFFERED_BYTES
    big = sampling.estimate_bytes({"input": LazyContent({"x": "a" * 50_000}, policy)})
    assert big == sampling.SPAN_OVERHEAD_BYTES + 20_000


@pytest.mark.parametrize("keep", [None, STRICT], ids=["head-only", "with-keep"])
@pytest.mark.parametrize("rate", [0.0, 0.5, 1.0])
def test_spans_started_is_every_span_and_adds_up(receiver: LocalReceiver, keep: Any, rate: float) -> None:
    """40 traces: started counts every span whatever sampling decides, and every one
    of them is exported, dropped or still queued."""
    slc.configure(dsn=receiver.dsn, sample_rate=rate, keep=keep)
    before = counts()
    for _ in range(40):
        invoke(chain_with_step(plain))
    assert slc.flush(10)
    per_trace = STEP_CHAIN_SPANS
    stats = slc.stats()
    started = delta(before, "spans_started")
    assert started == 40 * per_trace
    settled = delta(before, "spans_exported") + delta(before, "spans_dropped") + stats["spans_queued"]
    assert started == settled, stats
    assert len(receiver.spans) == delta(before, "spans_exported")
