"""The demo: one incident, told as one trace, on fake models (no network, no API keys).

Checkout is failing. An on-call agent (a LangGraph graph driving a scripted chat model that makes
tool calls) is asked why. Its log search times out, an error it absorbs and recovers from; it
then looks the fix up in the runbooks with a LlamaIndex query (a retriever over three small
documents with a keyword embedding, and a model that writes one sentence) made inside its tool
call; and it answers. All of it is one trace, "Error Analysis Agent": the agent, its model
calls, both tool calls (the failed one in red), and the LlamaIndex retrieval and synthesis nested
in the tool span that ran them. The runbook index is built before the agent starts and is not
traced: it is set-up, not part of the story.

What is not installed changes what is shown, and :func:`plan` says how (:attr:`Plan.notes`):
without LangGraph the agent is a plain LangChain loop (a chain: no agent or graph-node spans);
without LlamaIndex the runbooks are searched by a small LangChain retriever; without LangChain
there is no agent, and the runbook query is traced on its own. Which frameworks are there is read
from the adapter registry (:mod:`sentry_llm_callbacks.core.adapter`).

Example::

    import sentry_llm_callbacks as slc
    from sentry_llm_callbacks.devtools import demo

    slc.configure(dsn="https://KEY@o123.ingest.us.sentry.io/456")
    story = demo.plan()
    print(demo.run(story))   # the agent's answer
    slc.flush()

``sentry-llm-callbacks demo`` runs it and prints what arrived.
"""

from __future__ import annotations

import importlib
import re
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sentry_llm_callbacks.core import adapter
from sentry_llm_callbacks.devtools.trees import group_traces
from sentry_llm_callbacks.devtools.waterfall import (
    MODEL,
    TOOL,
    ReceivedSpanLike,
    fmt_cost,
    fmt_tokens,
    from_received_span,
    overview,
)

if TYPE_CHECKING:
    from langchain_core.runnables import RunnableConfig

TRACE_NAME = "Error Analysis Agent"
#: The trace's name when there is no agent (LangChain missing) and the runbook query runs alone.
LOOKUP_TRACE_NAME = "Runbook lookup"
USER = "user_12345"
SESSION = "session_abc"
TRACE = {"trace_name": TRACE_NAME, "environment": "demo", "release": "v2.1.0", "team": "sre"}

QUESTION = (
    "Checkout fails with NullPointerException at PaymentService.charge(PaymentService.java:42). "
    "Why, and what should we do?"
)
LOG_QUERY = "NullPointerException PaymentService.charge"
LOG_SEARCH_ERROR = "the log store did not answer within 2.0 s"
RUNBOOK_QUERY = "What do the runbooks say about a null card token in PaymentService.charge?"
RUNBOOKS = (
    "Payments runbook: a NullPointerException in PaymentService.charge means the card token is null. "
    "Validate the card token before charging and reject the request with HTTP 400.",
    "Postmortem: null card tokens came from mobile client v3.2 after a retry bug; v3.2.1 fixes it.",
    "On-call: page the payments team when charge failures stay above 1% for five minutes.",
)
#: What the runbook model writes (LlamaIndex's synthesis of the two runbooks it retrieved).
RUNBOOK_ANSWER = (
    "Validate the card token before PaymentService.charge and reject a null token with HTTP 400; "
    "null tokens come from mobile client v3.2, and v3.2.1 fixes it."
)
FINAL_ANSWER = (
    "PaymentService.charge dereferences a null card token sent by mobile client v3.2. Validate the token "
    "before charging (reject it with HTTP 400) and ask users to update to v3.2.1. The log search timed "
    "out, so confirm the client version in the logs once it is back."
)
CHAT_MODEL = "gpt-4o-mini"
EMBEDDING_MODEL = "keyword-embedding"
RUNBOOK_MODEL = "runbook-writer"

#: The frameworks the story has a part for (adapter registry names), and what installs each.
INSTALL = {"langchain": "pip install langchain-core", "llamaindex": "pip install llama-index-core"}
LANGGRAPH_INSTALL = "pip install langgraph"
NOTHING_TO_TRACE = (
    f"nothing to trace: install LangChain and LangGraph ({INSTALL['langchain']} langgraph) "
    f"or LlamaIndex ({INSTALL['llamaindex']})"
)


@dataclass(frozen=True)
class Plan:
    """What the demo will show here, given what is installed.

    ``frameworks``: the adapter registry's names of the installed frameworks the story uses, plus
    ``"langgraph"`` when LangGraph imports (the LangChain adapter traces it). ``notes``: for each
    missing part, a sentence saying what is missing, how to install it and what is shown instead.
    """

    frameworks: frozenset[str]
    notes: tuple[str, ...]

    @property
    def agent(self) -> bool:
        """Whether there is an agent (LangChain is installed); else only the runbook query."""
        return "langchain" in self.frameworks

    @property
    def trace_name(self) -> str:
        return TRACE_NAME if self.agent else LOOKUP_TRACE_NAME

    def story(self) -> str:
        """What the trace will show, in two or three sentences."""
        if not self.agent:
            return (
                "The story: the on-call runbooks are searched for the cause of a checkout failure, "
                "a LlamaIndex query (retrieval, embedding and synthesis) traced as one trace."
            )
        agent = "an on-call agent (LangGraph)" if "langgraph" in self.frameworks else "an on-call agent loop"
        lookup = (
            "with a LlamaIndex query made inside its tool call"
            if "llamaindex" in self.frameworks
            else "with a LangChain retriever"
        )
        return (
            f"The story: {agent} is asked why checkout fails. Its log search times out, an error it "
            f"absorbs and recovers from; it looks the fix up in the runbooks {lookup}; and it answers. "
            "All in one trace."
        )


def plan() -> Plan:
    """What the demo can show here: the story's frameworks found through the adapter registry
    (a framework whose adapter loads is installed), LangGraph when it imports, and a note for each
    part that is missing."""
    found = {name for name in adapter.names() if name in INSTALL and adapter.get(name) is not None}
    if "langchain" in found and _imports("langgraph.graph"):
        found.add("langgraph")
    notes = []
    if "langchain" not in found:
        notes.append(
            f"LangChain is not installed ({INSTALL['langchain']} langgraph): there is no agent, so the demo "
            "shows the runbook lookup alone, a LlamaIndex query in a trace of its own."
        )
    elif "langgraph" not in found:
        notes.append(
            f"LangGraph is not installed ({LANGGRAPH_INSTALL}): the agent runs as a plain LangChain loop "
            "instead, so its trace has a chain at the root and no agent or graph-node spans."
        )
    if "llamaindex" not in found:
        notes.append(
            f"LlamaIndex is not installed ({INSTALL['llamaindex']}): the agent searches the runbooks with a "
            "small LangChain retriever instead, so the trace has no LlamaIndex query."
        )
    return Plan(frozenset(found), tuple(notes))


def run(story: Plan) -> str:
    """Run the story (traced to the configured destination) and return its answer.

    Raises :class:`LookupError` when neither LangChain nor LlamaIndex is installed."""
    if not story.frameworks:
        raise LookupError(NOTHING_TO_TRACE)
    lookup = _llamaindex_lookup() if "llamaindex" in story.frameworks else None
    if not story.agent:
        assert lookup is not None
        return lookup(RUNBOOK_QUERY)
    from sentry_llm_callbacks.langchain import SentryCallbackHandler

    search = lookup or _langchain_lookup()
    model = scripted_chat_model(scripted_replies())
    tools = _tools(search)
    ask = _langgraph_agent(model, tools) if "langgraph" in story.frameworks else _langchain_loop(model, tools)
    return ask(QUESTION, {"callbacks": [SentryCallbackHandler(user=USER, session_id=SESSION, trace=TRACE)]})


def _imports(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def summarize(spans: Sequence[ReceivedSpanLike]) -> list[str]:
    """What arrived, a few lines a trace: its name and size, its model calls with their tokens and
    cost, its tool calls, and each span in error (and whether the run carried on after it)."""
    traces = group_traces(from_received_span(s) for s in spans)
    lines = [f"What arrived: {len(traces)} trace{'' if len(traces) == 1 else 's'}"]
    for members in traces.values():
        shape = overview(members)
        lines.append(f'  "{shape.name}" (trace {shape.trace_id}), {shape.spans} spans')
        models = Counter(s.name for s in members if s.kind == MODEL)
        if models:
            calls = ", ".join(f"{count} x {name}" if count > 1 else name for name, count in models.items())
            tokens = fmt_tokens(shape.input_tokens, shape.output_tokens)
            lines.append(f"    model calls: {calls}; tokens {tokens}, cost {fmt_cost(shape.cost)}")
        tools = [s.name for s in members if s.kind == TOOL]
        if tools:
            lines.append(f"    tool calls: {', '.join(tools)}")
        root_failed = any(s.error for s in members if not s.parent_id)
        for span in (s for s in members if s.error):
            outcome = "" if root_failed else " (absorbed: the run carried on and ended OK)"
            lines.append(f"    in red: {span.name}: {span.error}{outcome}")
    return lines


# --------------------------------------------------------------------------- the agent (LangChain)

#: An agent: the question and the run's LangChain config in, the answer's text out.
Agent = Callable[[str, dict[str, Any]], str]


def _usage(tokens_in: int, tokens_out: int, cached: int = 0) -> dict[str, Any]:
    usage: dict[str, Any] = {"input_tokens": tokens_in, "output_tokens": tokens_out}
    usage["total_tokens"] = tokens_in + tokens_out
    if cached:
        usage["input_token_details"] = {"cache_read": cached}
    return usage


def scripted_replies() -> list[Any]:
    """The agent model's three replies: search the logs, then the runbooks, then answer."""
    from langchain_core.messages import AIMessage

    def call(name: str, query: str, number: int) -> dict[str, Any]:
        return {"name": name, "args": {"query": query}, "id": f"call_{number}", "type": "tool_call"}

    def reply(content: str, usage: dict[str, Any], finish: str, *calls: dict[str, Any]) -> Any:
        meta = {"model_name": CHAT_MODEL, "finish_reason": finish}
        return AIMessage(content=content, tool_calls=list(calls), usage_metadata=usage, response_metadata=meta)

    return [
        reply("Let me search the logs for this exception.", _usage(412, 38, cached=256), "tool_calls",
              call("search_logs", LOG_QUERY, 1)),
        reply("The log search timed out; I will check the runbooks instead.", _usage(486, 41), "tool_calls",
              call("search_runbooks", RUNBOOK_QUERY, 2)),
        reply(FINAL_ANSWER, _usage(590, 64), "stop"),
    ]  # fmt: skip


def scripted_chat_model(replies: list[Any]) -> Any:
    """LangChain's fake chat model replying ``replies`` in order, taking tools as a real one does."""
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel

    class ScriptedChatModel(GenericFakeChatModel):
        model_name: str = CHAT_MODEL  # what LangChain reports as the requested model

        def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
            return self

    return ScriptedChatModel(messages=iter(replies))


def _tools(search_runbooks_with: Callable[[str], str]) -> list[Any]:
    from langchain_core.tools import tool

    @tool
    def search_logs(query: str) -> str:
        """Search the services' logs."""
        raise TimeoutError(LOG_SEARCH_ERROR)

    @tool
    def search_runbooks(query: str) -> str:
        """Search the team's runbooks and postmortems."""
        return search_runbooks_with(query)

    return [search_logs, search_runbooks]


def run_tools(reply: Any, tools: Sequence[Any], config: RunnableConfig) -> list[Any]:
    """Run each tool call of ``reply``; a tool's exception becomes an error result the agent reads
    (as LangGraph's ``ToolNode`` does), so the agent carries on."""
    from langchain_core.messages import ToolMessage

    by_name = {t.name: t for t in tools}
    results = []
    for call in reply.tool_calls:
        try:
            results.append(by_name[call["name"]].invoke({**call, "type": "tool_call"}, config))
        except Exception as exc:
            error = f"Error: {type(exc).__name__}: {exc}"
            results.append(ToolMessage(content=error, tool_call_id=call["id"], name=call["name"], status="error"))
    return results


def _langgraph_agent(model: Any, tools: Sequence[Any]) -> Agent:
    """A two-node LangGraph agent: ``agent`` calls the model, ``tools`` runs its tool calls."""
    from langchain_core.messages import HumanMessage

    with warnings.catch_warnings():  # deprecation notices of some langgraph releases' own imports
        warnings.simplefilter("ignore", DeprecationWarning)
        from langgraph.graph import END, START, MessagesState, StateGraph

    # LangGraph hands a node its config by the parameter's name when it is annotated RunnableConfig
    # or not at all; langgraph 0.3 resolves node annotations in this module's globals, where
    # LangChain is not imported: so ``config`` goes unannotated.
    def agent(state: Any, config) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"], config)]}

    def tools_node(state: Any, config) -> dict[str, Any]:
        return {"messages": run_tools(state["messages"][-1], tools, config)}

    def next_step(state: Any) -> str:
        return "tools" if state["messages"][-1].tool_calls else END

    graph = StateGraph(MessagesState)
    graph.add_node("agent", agent)
    graph.add_node("tools", tools_node)
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", next_step, ["tools", END])
    graph.add_edge("tools", "agent")
    compiled = graph.compile().with_config(run_name="error_analysis_agent")

    def ask(question: str, config: dict[str, Any]) -> str:
        state = compiled.invoke({"messages": [HumanMessage(question)]}, config=config)
        return str(state["messages"][-1].content)

    return ask


def _langchain_loop(model: Any, tools: Sequence[Any]) -> Agent:
    """The same agent without LangGraph: one LangChain run that calls the model and runs its
    tool calls until the model answers."""
    from langchain_core.messages import HumanMessage
    from langchain_core.runnables import RunnableLambda

    def agent_loop(question: str, config: RunnableConfig) -> str:
        messages: list[Any] = [HumanMessage(question)]
        for _ in range(5):
            reply = model.invoke(messages, config)
            messages.append(reply)
            if not reply.tool_calls:
                return str(reply.content)
            messages.extend(run_tools(reply, tools, config))
        raise RuntimeError("the agent did not answer within 5 steps")

    loop = RunnableLambda(agent_loop)
    return lambda question, config: str(loop.invoke(question, config=config))


def _langchain_lookup() -> Callable[[str], str]:
    """The runbook search without LlamaIndex: a LangChain retriever ranking the runbooks by the
    words they share with the query."""
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever

    class RunbookRetriever(BaseRetriever):
        def _get_relevant_documents(self, query: str, *, run_manager: Any = None) -> list[Any]:
            ranked = sorted(RUNBOOKS, key=lambda text: -len(_words(text) & _words(query)))
            return [Document(page_content=text) for text in ranked[:2]]

    retriever = RunbookRetriever()
    return lambda query: "\n".join(doc.page_content for doc in retriever.invoke(query))


# --------------------------------------------------------------------------- the lookup (LlamaIndex)


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


#: The keyword embedding's dimensions: words of the runbooks and the query that tell them apart.
VOCABULARY = (
    "null", "card", "token", "paymentservice", "charge", "validate", "nullpointerexception",
    "mobile", "client", "postmortem", "page", "team", "failures", "runbooks", "retry",
)  # fmt: skip


def keyword_vector(text: str) -> list[float]:
    """A deterministic embedding: which of :data:`VOCABULARY`'s words ``text`` holds (unit length)."""
    words = _words(text)
    vector = [1.0 if word in words else 0.0 for word in VOCABULARY]
    norm = sum(v * v for v in vector) ** 0.5 or 1.0
    return [v / norm for v in vector]


def _llamaindex_lookup() -> Callable[[str], str]:
    """Query the runbooks with LlamaIndex: an index over :data:`RUNBOOKS`, built now and not
    traced (set-up, not the story), and a query engine traced by a handler. Inside the agent's
    tool call the query nests under the tool's span; alone, it is a trace of its own, named
    :data:`LOOKUP_TRACE_NAME`."""
    from llama_index.core import VectorStoreIndex
    from llama_index.core.callbacks import CallbackManager
    from llama_index.core.query_engine import RetrieverQueryEngine
    from llama_index.core.schema import TextNode

    from sentry_llm_callbacks.llamaindex import SentryLlamaIndexHandler

    nodes = [TextNode(text=text, id_=f"runbook-{number}") for number, text in enumerate(RUNBOOKS, 1)]
    index = VectorStoreIndex(nodes, embed_model=_embedding_class()())
    trace = {**TRACE, "trace_name": LOOKUP_TRACE_NAME}  # a root's name: unused when nested
    handler = SentryLlamaIndexHandler(user=USER, session_id=SESSION, trace=trace)
    engine = RetrieverQueryEngine.from_args(
        index.as_retriever(similarity_top_k=2),
        llm=_runbook_model_class()(),
        callback_manager=CallbackManager([handler]),
    )
    return lambda query: str(engine.query(query))


def _embedding_class() -> type:
    from llama_index.core.embeddings import BaseEmbedding

    class KeywordEmbedding(BaseEmbedding):
        """:func:`keyword_vector` as a LlamaIndex embedding model."""

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(model_name=EMBEDDING_MODEL, **kwargs)

        def _get_query_embedding(self, query: str) -> list[float]:
            return keyword_vector(query)

        def _get_text_embedding(self, text: str) -> list[float]:
            return keyword_vector(text)

        async def _aget_query_embedding(self, query: str) -> list[float]:
            return keyword_vector(query)

    return KeywordEmbedding


def _runbook_model_class() -> type:
    from llama_index.core.llms import CompletionResponse, CustomLLM, LLMMetadata
    from llama_index.core.llms.callbacks import llm_completion_callback

    class RunbookModel(CustomLLM):
        """A LlamaIndex model that writes :data:`RUNBOOK_ANSWER`, with token usage as OpenAI reports it."""

        model: str = RUNBOOK_MODEL  # the field real integrations name their model in

        @property
        def metadata(self) -> LLMMetadata:
            return LLMMetadata(model_name=RUNBOOK_MODEL, context_window=4096, num_output=128)

        @llm_completion_callback()
        def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
            return CompletionResponse(text=RUNBOOK_ANSWER, raw=_openai_usage(prompt, RUNBOOK_ANSWER))

        @llm_completion_callback()
        def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> Iterator[Any]:
            raw = _openai_usage(prompt, RUNBOOK_ANSWER)
            yield CompletionResponse(text=RUNBOOK_ANSWER, delta=RUNBOOK_ANSWER, raw=raw)

    return RunbookModel


def _openai_usage(prompt: str, text: str) -> dict[str, Any]:
    """Token counts in OpenAI's shape, estimated as four characters a token."""
    tokens_in, tokens_out = len(prompt) // 4, len(text) // 4
    usage = {"prompt_tokens": tokens_in, "completion_tokens": tokens_out, "total_tokens": tokens_in + tokens_out}
    return {"model": RUNBOOK_MODEL, "usage": usage}


# --------------------------------------------------------------------------- the trace page's agent

#: The metadata of :func:`run_langchain_agent`.
DEMO_METADATA: dict[str, Any] = {
    "user": USER,
    "session_id": SESSION,
    "trace": {**TRACE, "generation_name": "Analyze Stack Trace"},
}


def run_langchain_agent(metadata: dict[str, Any] | None = None) -> str:
    """A small ReAct agent (LangGraph's ``create_react_agent`` when installed, else two model calls
    around a tool) whose one tool call succeeds: a fixed two-generation trace that the trace
    page's tests and screenshots draw. Not the demo's story (:func:`run`)."""
    from langchain_core.messages import AIMessage
    from langchain_core.tools import tool

    from sentry_llm_callbacks.langchain import SentryCallbackHandler

    @tool
    def search_logs(query: str) -> str:
        """Search the service logs."""
        return "NullPointerException at PaymentService.charge(PaymentService.java:42)"

    meta = {"model_name": CHAT_MODEL}
    replies = [
        AIMessage(
            content="",
            usage_metadata=_usage(412, 38, cached=256),
            tool_calls=[{"name": "search_logs", "args": {"query": "payment errors"}, "id": "call_1"}],
            response_metadata={**meta, "finish_reason": "tool_calls"},
        ),
        AIMessage(
            content="PaymentService.charge dereferences a null card token; validate it first.",
            usage_metadata=_usage(502, 21),
            response_metadata={**meta, "finish_reason": "stop"},
        ),
    ]
    model = scripted_chat_model(replies)
    config: dict[str, Any] = {"callbacks": [SentryCallbackHandler()], "metadata": metadata or DEMO_METADATA}
    question = "Why are payments failing?"
    if _imports("langgraph.prebuilt"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            from langgraph.prebuilt import create_react_agent

            agent = create_react_agent(model, [search_logs], name="error_analysis_agent")
        result = agent.invoke({"messages": [("human", question)]}, config=config)
        return str(result["messages"][-1].content)
    first = model.invoke(question, config=config)
    observation = search_logs.invoke(first.tool_calls[0], config=config)
    return str(model.invoke(f"{question}\n{observation.content}", config=config).content)
