"""LangChain and LangGraph pieces several suites build on: named fake chat models, a prompt |
model | parser chain, ``ChatOpenAI`` against the local OpenAI-compatible server, two tools, a
retriever, a ReAct agent, and reading whether a graph stopped at an interrupt."""

from __future__ import annotations

from typing import Any

from langchain_core.documents import Document
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.retrievers import BaseRetriever
from langchain_core.tools import tool

from tests.support.openai_server import OpenAIServer


class NamedFake(GenericFakeChatModel):
    """A fake chat model that names its model, as every real provider does."""

    model_name: str = "fake-chat"


class ToolCallingFake(NamedFake):
    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self


def fake_model(*contents: str, usage: dict[str, int] | None = None) -> GenericFakeChatModel:
    return NamedFake(messages=iter([AIMessage(content=c, usage_metadata=usage) for c in contents]))


def simple_chain(model: Any) -> Any:
    prompt = ChatPromptTemplate.from_messages([("system", "You are a careful SRE."), ("human", "{question}")])
    return prompt | model | StrOutputParser()


def chat_openai(server: OpenAIServer, **kwargs: Any) -> Any:
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(model="gpt-4o-mini", base_url=server.base_url, api_key="sk-test", **kwargs)


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@tool
def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


class TinyRetriever(BaseRetriever):
    docs: list[Document]

    def _get_relevant_documents(self, query: str, *, run_manager: Any = None) -> list[Document]:
        return self.docs


def react_agent(**kwargs: Any) -> Any:
    from langgraph.prebuilt import create_react_agent

    messages = iter(
        [
            AIMessage(content="", tool_calls=[{"name": "add", "args": {"a": 2, "b": 3}, "id": "c1"}]),
            AIMessage(content="The sum is 5."),
        ]
    )
    return create_react_agent(ToolCallingFake(messages=messages), [add], **kwargs)


def paused(app: object, thread: dict) -> bool:
    """True when a LangGraph app stopped at an interrupt on ``thread`` and waits for a resume
    (read from its checkpoint: ``invoke`` returns ``__interrupt__`` only in LangGraph 0.4 and later)."""
    return bool(app.get_state(thread).next)  # type: ignore[attr-defined]
