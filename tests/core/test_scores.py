"""Scores and feedback on traces (SPEC 8e): evaluation spans in the shape Sentry's trace view
reads, made in the run, after it, or from another process that only knows the ids."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from typing import Any

import pytest
from langchain_core.runnables import RunnableConfig, RunnableLambda

import sentry_llm_callbacks as slc
from sentry_llm_callbacks.devtools.receiver import LocalReceiver, ReceivedSpan
from sentry_llm_callbacks.langchain import SentryCallbackHandler
from tests.support.invariants import check_trace, check_traces
from tests.support.spans import delivered

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"


def answer_chain() -> Any:
    return RunnableLambda(lambda q: f"the answer to {q}").with_config(run_name="Answer")


def evaluations(spans: list[ReceivedSpan]) -> list[ReceivedSpan]:
    return [s for s in spans if s.attributes.get("gen_ai.operation.name") == "evaluate"]


def input_item(span: ReceivedSpan) -> dict[str, Any]:
    items = json.loads(span.attributes["gen_ai.input.messages"])
    assert isinstance(items, list) and items[0]["type"] == "evaluation" and "state" in items[0]
    return items[0]


def answers(span: ReceivedSpan) -> dict[str, Any]:
    items = json.loads(span.attributes["gen_ai.output.messages"])
    assert isinstance(items, list) and items[0]["type"] == "evaluation"
    return items[0]["answers"]


def test_a_score_after_the_trace_is_an_evaluation_span_under_its_root(receiver: LocalReceiver) -> None:
    slc.configure(dsn=receiver.dsn)
    answer_chain().invoke("q1", config={"callbacks": [SentryCallbackHandler()]})
    ref = slc.last_trace()
    assert ref is not None
    slc.score(ref, "helpfulness", 0.8, explanation="cites the runbook")
    slc.score(ref, "thumbs_up", True)
    slc.score(ref, "category", "billing")

    spans = delivered(receiver, 4)
    scored = evaluations(spans)
    trace = check_trace(spans, lazy=[s.name for s in scored])
    assert trace.root.trace_id == ref.trace_id and trace.root.span_id == ref.span_id
    by_name = {s.attributes["gen_ai.evaluation.name"]: s for s in scored}
    assert set(by_name) == {"helpfulness", "thumbs_up", "category"}
    for name, span in by_name.items():
        assert span.name == f"evaluate {name}"
        assert span.parent_span_id == ref.span_id and span.trace_id == ref.trace_id
        assert span.attributes["sentry.op"] == "gen_ai.evaluate"
    helpfulness = by_name["helpfulness"]
    assert answers(helpfulness) == {"helpfulness": {"type": "score", "score": 0.8}}
    assert input_item(helpfulness)["questions"] == {
        "helpfulness": {"type": "score", "instructions": "cites the runbook"}
    }
    assert helpfulness.attributes["gen_ai.evaluation.score.value"] == 0.8
    assert helpfulness.attributes["gen_ai.evaluation.explanation"] == "cites the runbook"
    assert answers(by_name["thumbs_up"]) == {"thumbs_up": {"type": "boolean", "probability": 1.0}}
    assert by_name["thumbs_up"].attributes["gen_ai.evaluation.score.label"] == "true"
    assert answers(by_name["category"]) == {"category": {"type": "choice", "choice": "billing"}}
    assert by_name["category"].attributes["gen_ai.evaluation.score.label"] == "billing"


def test_current_run_scores_the_step_that_is_running(receiver: LocalReceiver) -> None:
    slc.configure(dsn=receiver.dsn)
    seen: list[slc.RunRef | None] = []

    def step(question: str, config: RunnableConfig) -> str:
        ref = slc.current_run()
        seen.append(ref)
        assert ref is not None
        slc.score(ref, "grounded", False)
        return question

    chain = RunnableLambda(step).with_config(run_name="Step") | answer_chain()
    chain.invoke("q", config={"callbacks": [SentryCallbackHandler()]})
    assert slc.current_run() is None  # outside every run
    spans = delivered(receiver, 4)
    (scored,) = evaluations(spans)
    check_trace(spans, lazy=[scored.name])
    step_span = next(s for s in spans if s.name == "Step")
    assert seen[0] is not None and seen[0].span_id == step_span.span_id
    assert scored.parent_span_id == step_span.span_id
    assert answers(scored) == {"grounded": {"type": "boolean", "probability": 0.0}}


def test_evaluator_results_are_accepted(receiver: LocalReceiver) -> None:
    from llama_index.core.evaluation import EvaluationResult

    slc.configure(dsn=receiver.dsn)
    ref = slc.RunRef(trace_id=TRACE, span_id=SPAN)
    result = EvaluationResult(query="q", response="the evaluated answer", passing=True, score=0.9, feedback="faithful")
    slc.score(ref, "faithfulness", result)
    slc.score(ref, "correctness", {"score": 1, "value": "Y", "reasoning": "matches the reference"})
    slc.score(ref, "relevance", EvaluationResult(passing=False, feedback="off topic"))
    spans = delivered(receiver, 3)
    by_name = {s.attributes["gen_ai.evaluation.name"]: s for s in spans}
    faithful = by_name["faithfulness"]
    assert answers(faithful) == {"faithfulness": {"type": "score", "score": 0.9}}
    assert input_item(faithful)["state"] == "the evaluated answer"
    assert faithful.attributes["gen_ai.evaluation.explanation"] == "faithful"
    assert answers(by_name["correctness"]) == {"correctness": {"type": "score", "score": 1.0}}
    assert by_name["correctness"].attributes["gen_ai.evaluation.explanation"] == "matches the reference"
    assert answers(by_name["relevance"]) == {"relevance": {"type": "boolean", "probability": 0.0}}
    for span in spans:
        assert span.trace_id == TRACE and span.parent_span_id == SPAN and span.parent_is_remote


def test_privacy_mode_sends_the_name_and_value_only(receiver: LocalReceiver) -> None:
    from llama_index.core.evaluation import EvaluationResult

    slc.configure(dsn=receiver.dsn, privacy_mode=True)
    answer_chain().invoke("SECRET-QUESTION", config={"callbacks": [SentryCallbackHandler()]})
    ref = slc.last_trace()
    assert ref is not None
    slc.score(ref, "helpfulness", 0.4, explanation="SECRET-EXPLANATION")
    slc.score(ref, "faithful", EvaluationResult(response="SECRET-STATE", passing=True, feedback="SECRET-FEEDBACK"))
    spans = delivered(receiver, 3)
    check_trace(spans, lazy=[s.name for s in evaluations(spans)])
    wire = b"".join(receiver.bodies)
    for secret in (b"SECRET-QUESTION", b"SECRET-EXPLANATION", b"SECRET-STATE", b"SECRET-FEEDBACK"):
        assert secret not in wire, secret
    by_name = {s.attributes["gen_ai.evaluation.name"]: s for s in evaluations(spans)}
    assert answers(by_name["helpfulness"]) == {"helpfulness": {"type": "score", "score": 0.4}}
    assert by_name["helpfulness"].attributes["gen_ai.evaluation.explanation"] == "[Filtered]"
    assert input_item(by_name["faithful"])["state"] == "[Filtered]"


def test_a_private_handler_makes_its_scores_private(receiver: LocalReceiver) -> None:
    slc.configure(dsn=receiver.dsn)
    answer_chain().invoke("q", config={"callbacks": [SentryCallbackHandler(privacy_mode=True)]})
    ref = slc.last_trace()
    assert ref is not None
    slc.score(ref, "helpfulness", 0.4, explanation="SECRET-EXPLANATION")
    spans = delivered(receiver, 2)
    check_trace(spans, lazy=[s.name for s in evaluations(spans)])
    assert b"SECRET-EXPLANATION" not in b"".join(receiver.bodies)


def test_last_trace_is_per_asyncio_task(receiver: LocalReceiver) -> None:
    """Two tasks at once, each finding its own trace (async steps: their callbacks run in the task)."""
    slc.configure(dsn=receiver.dsn)

    async def answer(question: str) -> str:
        await asyncio.sleep(0)  # let the other task run in between
        return f"the answer to {question}"

    chain = RunnableLambda(answer).with_config(run_name="Answer")

    async def one(question: str) -> tuple[str, slc.RunRef | None]:
        await chain.ainvoke(question, config={"callbacks": [SentryCallbackHandler()]})
        return question, slc.last_trace()

    async def both() -> list[tuple[str, slc.RunRef | None]]:
        return await asyncio.gather(one("a"), one("b"))

    refs = dict(asyncio.run(both()))
    spans = delivered(receiver, 2)
    check_traces(spans, 2)
    roots = {s.attributes["input.value"]: s for s in spans}
    for question, ref in refs.items():
        assert ref is not None
        root = next(s for s in roots.values() if question in s.attributes["input.value"])
        assert (ref.trace_id, ref.span_id) == (root.trace_id, root.span_id)


def test_a_score_from_another_process_that_only_knows_the_ids(receiver: LocalReceiver) -> None:
    slc.configure(dsn=receiver.dsn)
    answer_chain().invoke("q", config={"callbacks": [SentryCallbackHandler()]})
    ref = slc.last_trace()
    assert ref is not None
    delivered(receiver, 1)
    code = textwrap.dedent(
        f"""
        import sentry_llm_callbacks as slc
        slc.score(slc.RunRef(trace_id={ref.trace_id!r}, span_id={ref.span_id!r}), "resolved", True)
        assert slc.flush(10)
        """
    )
    env = {**os.environ, "SENTRY_DSN": receiver.dsn}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)
    spans = receiver.wait_for_spans(2)
    (scored,) = evaluations(spans)
    assert scored.trace_id == ref.trace_id and scored.parent_span_id == ref.span_id
    check_trace(spans, lazy=[scored.name])


@pytest.mark.parametrize(
    ("trace_id", "span_id"),
    [("xyz", SPAN), (TRACE, "short"), ("0" * 32, SPAN), (TRACE, "0" * 16), (None, SPAN), (TRACE[:-1] + "g", SPAN)],
)
def test_bad_ids_are_refused_at_once(trace_id: Any, span_id: Any) -> None:
    with pytest.raises(slc.ConfigurationError, match="hex digits"):
        slc.RunRef(trace_id=trace_id, span_id=span_id)


def test_ids_in_upper_case_are_read_as_lower_case() -> None:
    assert slc.RunRef(trace_id=TRACE.upper(), span_id=SPAN.upper()) == slc.RunRef(trace_id=TRACE, span_id=SPAN)


@pytest.mark.parametrize("value", [None, float("nan"), "", [], object()])
def test_values_of_another_kind_are_refused(sentry: LocalReceiver, value: Any) -> None:
    with pytest.raises(slc.ConfigurationError, match="value"):
        slc.score(slc.RunRef(trace_id=TRACE, span_id=SPAN), "x", value)
    with pytest.raises(slc.ConfigurationError, match="ref"):
        slc.score((TRACE, SPAN), "x", 1)  # type: ignore[arg-type]
    with pytest.raises(slc.ConfigurationError, match="name"):
        slc.score(slc.RunRef(trace_id=TRACE, span_id=SPAN), " ", 1)


def test_spans_started_counts_scores(receiver: LocalReceiver) -> None:
    slc.configure(dsn=receiver.dsn)
    before = slc.stats()
    slc.score(slc.RunRef(trace_id=TRACE, span_id=SPAN), "x", 1)
    delivered(receiver, 1)
    after = slc.stats()
    assert after["spans_started"] - before["spans_started"] == 1
    assert after["spans_exported"] - before["spans_exported"] == 1


def test_an_evaluation_span_sends_only_keys_sentry_knows_or_we_list(receiver: LocalReceiver) -> None:
    from sentry_conventions.attributes import ATTRIBUTE_METADATA

    from sentry_llm_callbacks.core import attributes as attr

    slc.configure(dsn=receiver.dsn)
    slc.score(slc.RunRef(trace_id=TRACE, span_id=SPAN), "helpfulness", 0.8, explanation="why")
    (span,) = delivered(receiver, 1)
    for key in span.attributes:
        meta = ATTRIBUTE_METADATA.get(key)
        own = any(key == k or (k.endswith(".") and key.startswith(k)) for k in attr.OWN_KEYS)
        assert own or (meta is not None and meta.deprecation is None), key


def test_a_trace_starts_while_another_thread_is_still_importing_asyncio(
    receiver: LocalReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A module object without its functions yet stands where asyncio is: a root must still start."""
    import types

    slc.configure(dsn=receiver.dsn)
    monkeypatch.setitem(sys.modules, "asyncio", types.ModuleType("asyncio"))
    answer_chain().invoke("q", config={"callbacks": [SentryCallbackHandler()]})
    monkeypatch.undo()
    spans = delivered(receiver, 1)
    check_trace(spans)
    (span,) = spans
    assert slc.last_trace() == slc.RunRef(trace_id=span.trace_id, span_id=span.span_id)
