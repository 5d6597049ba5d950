"""The demo tells one story in one trace: run as a user runs it (``python -m sentry_llm_callbacks
demo``, a subprocess sending over HTTP to the local receiver), with every framework installed and
with LangGraph, LlamaIndex or LangChain made unimportable, and the trace that arrived checked whole."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

from sentry_llm_callbacks.devtools import demo
from sentry_llm_callbacks.devtools.receiver import LocalReceiver, ReceivedSpan
from tests.support.command_line import cli, hiding, words
from tests.support.environment import REPO_ROOT
from tests.support.invariants import Trace, check_trace

CHAT_USAGE = [(412, 38), (486, 41), (590, 64)]
ERROR = 2


def run_demo(receiver: LocalReceiver, env: dict[str, str] | None = None) -> str:
    """The demo's output (its lines joined, so wrapped sentences read whole), after it sent to ``receiver``."""
    result = cli("demo", "--dsn", receiver.dsn, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    return words(result.stdout)


def llm_calls(trace: Trace) -> list[str]:
    return sorted(s.name for s in trace.generations)


def tool(trace: Trace, name: str) -> ReceivedSpan:
    return trace.named(f"execute_tool {name}")


def assert_the_failed_tool_is_red_and_absorbed(trace: Trace) -> None:
    failed = tool(trace, "search_logs")
    assert failed.status_code == ERROR and failed.attributes["error.type"] == "TimeoutError"
    assert failed.status_message == f"TimeoutError: {demo.LOG_SEARCH_ERROR}"
    assert [s.name for s in trace.spans if s.status_code == ERROR] == [failed.name]
    assert trace.root.status_code != ERROR  # the agent carried on: an absorbed error


def assert_nested_in(trace: Trace, span: ReceivedSpan, ancestor: ReceivedSpan) -> None:
    assert ancestor in trace.ancestors(span), (
        f"{span.name!r} is not inside {ancestor.name!r}: {[a.name for a in trace.ancestors(span)]}"
    )


def test_the_whole_story_is_one_trace(receiver: LocalReceiver) -> None:
    out = run_demo(receiver)
    # One trace: one root, no orphans, containment, one generation per model call with its usage.
    trace = check_trace(receiver.spans, generations=5, usage=[*CHAT_USAGE, *runbook_usage(receiver.spans)])
    assert trace.root.name == demo.TRACE_NAME and trace.root.op == "gen_ai.invoke_agent"
    assert trace.root.attributes["gen_ai.agent.name"] == "error_analysis_agent"
    assert llm_calls(trace) == ["chat gpt-4o-mini"] * 3 + [
        "embeddings keyword-embedding",
        "text_completion runbook-writer",
    ]
    assert not any("Analyze Stack Trace" in s.name for s in trace.spans)  # no story's name on another's span
    assert [s.name for s in trace.spans if s.op == "gen_ai.execute_tool"] == [
        "execute_tool search_logs",
        "execute_tool search_runbooks",
    ]
    assert_the_failed_tool_is_red_and_absorbed(trace)

    # The LlamaIndex lookup ran inside the agent's tool call, and its retrieval nests there.
    lookup = tool(trace, "search_runbooks")
    query = trace.named("RetrieverQueryEngine.query")
    retrieval = trace.named("VectorIndexRetriever.retrieve")
    assert trace.parent(query) is lookup
    assert_nested_in(trace, retrieval, lookup)
    assert_nested_in(trace, trace.named("embeddings keyword-embedding"), retrieval)
    assert_nested_in(trace, trace.named("text_completion runbook-writer"), query)
    assert demo.RUNBOOK_ANSWER in lookup.attributes["gen_ai.tool.call.result"]
    for span in trace.spans:
        assert span.attributes["user.id"] == demo.USER and span.attributes["session.id"] == demo.SESSION

    # The answer reads as text; the last lines say what was sent and where to look.
    assert f"The agent answered: {demo.FINAL_ANSWER}" in out
    assert demo.FINAL_ANSWER in trace.root.attributes["output.value"]
    assert f'Delivered {len(trace.spans)} spans: the trace "{demo.TRACE_NAME}" ({trace.trace_id}).' in out
    assert f"See it at http://127.0.0.1:{receiver.port}/trace/{trace.trace_id}" in out
    assert "is not installed" not in out


def test_without_a_dsn_it_prints_the_trace_and_where_to_look() -> None:
    result = cli("demo")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert len(re.findall(r"^trace [0-9a-f]{32}", out, re.M)) == 1
    trace_id = re.search(r"^trace ([0-9a-f]{32})", out, re.M).group(1)  # type: ignore[union-attr]
    assert "What arrived: 1 trace" in out and f'"{demo.TRACE_NAME}" (trace {trace_id}), 19 spans' in out
    assert f"in red: execute_tool search_logs: TimeoutError: {demo.LOG_SEARCH_ERROR} (absorbed" in out
    assert re.search(r"^\s+execute_tool search_logs\s+\[gen_ai\.execute_tool, .*ERROR TimeoutError", out, re.M)
    assert "model calls: 3 x chat gpt-4o-mini, embeddings keyword-embedding, text_completion runbook-writer" in out
    assert "tool calls: execute_tool search_logs, execute_tool search_runbooks" in out
    assert "sentry-llm-callbacks demo --keep-serving" in out


def test_keep_serving_prints_the_trace_page_and_serves_it() -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SENTRY_")}
    command = [sys.executable, "-m", "sentry_llm_callbacks", "demo", "--keep-serving"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT, env=environment)
    try:
        assert proc.stdout is not None
        url = None
        for line in proc.stdout:  # the command prints this line, then serves until stopped
            match = re.match(r"This trace: (http://127\.0\.0\.1:\d+/trace/[0-9a-f]{32})$", line.strip())
            if match:
                url = match.group(1)
                break
        assert url is not None, "the demo printed no page for its trace"
        with urllib.request.urlopen(url, timeout=10) as response:
            page = response.read().decode()
        assert response.status == 200 and demo.TRACE_NAME in page
        assert "execute_tool search_logs" in page and f"TimeoutError: {demo.LOG_SEARCH_ERROR}" in page
        assert "VectorIndexRetriever.retrieve" in page
    finally:
        proc.terminate()
        proc.wait(10)


def test_without_langgraph_it_says_so_and_runs_the_agent_as_a_loop(receiver: LocalReceiver, tmp_path: Path) -> None:
    out = run_demo(receiver, env=hiding(tmp_path, "langgraph"))
    assert (
        "LangGraph is not installed (pip install langgraph): the agent runs as a plain LangChain loop instead, "
        "so its trace has a chain at the root and no agent or graph-node spans."
    ) in out
    assert "(LangGraph)" not in out  # the story does not claim a LangGraph agent
    trace = check_trace(receiver.spans, generations=5, usage=[*CHAT_USAGE, *runbook_usage(receiver.spans)])
    assert trace.root.name == demo.TRACE_NAME and trace.root.op == "function"
    assert not trace.with_op("gen_ai.invoke_agent")
    assert not [s for s in trace.spans if s.name in ("agent", "tools")]
    assert [trace.parent(s) for s in trace.generations if s.op == "gen_ai.chat"] == [trace.root] * 3
    assert_the_failed_tool_is_red_and_absorbed(trace)
    assert_nested_in(trace, trace.named("VectorIndexRetriever.retrieve"), tool(trace, "search_runbooks"))
    assert f"The agent answered: {demo.FINAL_ANSWER}" in out


def test_without_llamaindex_it_says_so_and_searches_with_langchain(receiver: LocalReceiver, tmp_path: Path) -> None:
    out = run_demo(receiver, env=hiding(tmp_path, "llama_index"))
    assert (
        "LlamaIndex is not installed (pip install llama-index-core): the agent searches the runbooks with a "
        "small LangChain retriever instead, so the trace has no LlamaIndex query."
    ) in out
    trace = check_trace(receiver.spans, generations=3, usage=CHAT_USAGE)
    assert trace.root.name == demo.TRACE_NAME and trace.root.op == "gen_ai.invoke_agent"
    assert_the_failed_tool_is_red_and_absorbed(trace)
    retriever = trace.named("RunbookRetriever")
    assert trace.parent(retriever) is tool(trace, "search_runbooks")
    assert not [s for s in trace.spans if "." in s.name]  # no LlamaIndex component's span
    assert f"The agent answered: {demo.FINAL_ANSWER}" in out


def test_without_langchain_it_says_so_and_shows_the_lookup_alone(receiver: LocalReceiver, tmp_path: Path) -> None:
    out = run_demo(receiver, env=hiding(tmp_path, "langchain_core"))
    assert (
        "LangChain is not installed (pip install langchain-core langgraph): there is no agent, so the demo shows "
        "the runbook lookup alone, a LlamaIndex query in a trace of its own."
    ) in out
    trace = check_trace(receiver.spans, generations=2, usage=runbook_usage(receiver.spans))
    assert trace.root.name == demo.LOOKUP_TRACE_NAME
    assert llm_calls(trace) == ["embeddings keyword-embedding", "text_completion runbook-writer"]
    assert trace.parent(trace.named("VectorIndexRetriever.retrieve")) is trace.root
    assert f"The runbook lookup answered: {demo.RUNBOOK_ANSWER}" in out
    assert f'spans: the trace "{demo.LOOKUP_TRACE_NAME}" ({trace.trace_id}).' in out


def test_with_neither_framework_it_says_what_to_install(receiver: LocalReceiver, tmp_path: Path) -> None:
    result = cli("demo", "--dsn", receiver.dsn, env=hiding(tmp_path, "langchain_core", "llama_index"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip() == (
        "sentry-llm-callbacks demo: nothing to trace: install LangChain and LangGraph "
        "(pip install langchain-core langgraph) or LlamaIndex (pip install llama-index-core)"
    )
    assert receiver.requests == 0


def runbook_usage(spans: list[ReceivedSpan]) -> list[tuple[int, int]]:
    """The runbook model's (input, output) tokens: four characters a token of its prompt and answer."""
    (call,) = [s for s in spans if s.name == "text_completion runbook-writer"]
    tokens_in = call.attributes["gen_ai.usage.input_tokens"]
    assert tokens_in > 50  # the prompt holds the retrieved runbooks
    return [(tokens_in, len(demo.RUNBOOK_ANSWER) // 4)]
