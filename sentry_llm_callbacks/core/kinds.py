"""The kinds of run the recorder knows, and what Sentry calls each."""

from __future__ import annotations

from enum import Enum

from sentry_llm_callbacks.core import attributes as attr


class RunKind(str, Enum):
    """What a run is. A ``str`` enum: each member equals its value (``RunKind.CHAT == "chat"``)."""

    AGENT = "agent"
    CHAT = "chat"
    COMPLETION = "text_completion"
    EMBEDDINGS = "embeddings"
    TOOL = "tool"
    CHAIN = "chain"
    RETRIEVER = "retriever"

    def __str__(self) -> str:
        return self.value


#: Each kind's ``sentry.op`` and ``gen_ai.operation.name`` (None: not a gen_ai operation).
OPS: dict[str, tuple[str, str | None]] = {
    RunKind.AGENT: (attr.OP_INVOKE_AGENT, "invoke_agent"),
    RunKind.CHAT: (attr.OP_CHAT, "chat"),
    RunKind.COMPLETION: (attr.OP_TEXT_COMPLETION, "text_completion"),
    RunKind.EMBEDDINGS: (attr.OP_EMBEDDINGS, "embeddings"),
    RunKind.TOOL: (attr.OP_EXECUTE_TOOL, "execute_tool"),
    RunKind.CHAIN: (attr.OP_FUNCTION, None),
    RunKind.RETRIEVER: (attr.OP_FUNCTION, None),
}
#: Model calls: the kinds Sentry shows as generations.
GENERATIONS = frozenset({RunKind.CHAT, RunKind.COMPLETION, RunKind.EMBEDDINGS})
#: Model calls made from a prompt (chat and completion; not embeddings). A tuple: ``in`` compares
#: identity first, cheaper than hashing an enum member on every run.
CHAT_LIKE = (RunKind.CHAT, RunKind.COMPLETION)
