"""The app's ``random`` is the app's: an app that seeds it gets new trace ids in every run, and
the numbers it draws are the ones it would draw untraced; a forked child makes ids of its own."""

from __future__ import annotations

import random

from langchain_core.runnables import RunnableLambda

from sentry_llm_callbacks.devtools.receiver import LocalReceiver
from sentry_llm_callbacks.langchain import SentryCallbackHandler
from tests.support.forking import fork_traced_run, wait_or_kill
from tests.support.invariants import check_trace, check_traces
from tests.support.langchain_models import fake_model, simple_chain
from tests.support.spans import by_name, delivered

USAGE = {"input_tokens": 7, "output_tokens": 3, "total_tokens": 10}


def test_an_app_that_seeds_random_gets_new_trace_ids_and_its_own_numbers(sentry: LocalReceiver) -> None:
    """An evaluation script seeds ``random`` to be reproducible, and is run twice: the two runs
    are two traces, and what it draws after each traced call is what it drew untraced."""
    chain = simple_chain(fake_model(*["It is the cache."] * 3, usage=USAGE))
    question = {"question": "Why does checkout fail?"}

    random.seed(42)
    chain.invoke(question)  # untraced: whatever LangChain itself draws is in both sequences
    untraced = [random.random() for _ in range(5)]

    handler = SentryCallbackHandler()
    for _ in range(2):  # the same script, run twice
        random.seed(42)
        chain.invoke(question, config={"callbacks": [handler]})
        assert [random.random() for _ in range(5)] == untraced, "tracing moved the app's random sequence on"

    traces = check_traces(delivered(sentry, 8), 2)  # one trace id shared by both runs would fail here
    assert len({span.span_id for trace in traces for span in trace.spans}) == 8


def test_a_forked_child_makes_ids_of_its_own(sentry: LocalReceiver) -> None:
    """Parent and child start from the same generator state at the fork: the child must not
    make the ids the parent makes next."""
    handler = SentryCallbackHandler()
    RunnableLambda(lambda x: x + 1).invoke(1, config={"callbacks": [handler]})  # the generator in use
    child = fork_traced_run("forked child")
    RunnableLambda(lambda x: x * 2).invoke(3, config={"callbacks": [handler], "run_name": "parent after fork"})
    assert wait_or_kill(child, 15) == 0, "the child failed, or hung and was killed"

    spans = delivered(sentry, 3)
    forked, parent = by_name(spans, "forked child"), by_name(spans, "parent after fork")
    check_trace([forked])
    check_trace([parent])
    assert forked.trace_id != parent.trace_id
    assert forked.span_id != parent.span_id
