"""Content is rendered, converted and masked on the export thread, never on the application's:
span attributes, custom events, agent actions and agent finishes alike."""

from __future__ import annotations

import threading
import uuid

from langchain_core.agents import AgentAction, AgentFinish
from langchain_core.callbacks import CallbackManager
from langchain_core.callbacks.manager import dispatch_custom_event
from langchain_core.runnables import RunnableLambda

import sentry_llm_callbacks as slc
from sentry_llm_callbacks.devtools.receiver import LocalReceiver
from sentry_llm_callbacks.langchain import SentryCallbackHandler
from tests.support.invariants import check_traces
from tests.support.spans import delivered


class ThreadRecordingMask:
    """A ``mask`` that upper-cases and remembers the thread of each call."""

    def __init__(self) -> None:
        self.threads: list[int] = []
        self.texts: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, text: str) -> str:
        with self._lock:
            self.threads.append(threading.get_ident())
            self.texts.append(text)
        return text.upper()


def test_mask_never_runs_on_the_calling_thread(receiver: LocalReceiver) -> None:
    mask = ThreadRecordingMask()
    slc.configure(dsn=receiver.dsn, mask=mask)
    handler = SentryCallbackHandler()

    def step(question: str, config: dict) -> str:
        dispatch_custom_event("progress", {"note": "custom-event-content"}, config=config)
        return question + " answered"

    RunnableLambda(step).invoke("chain-input-content", config={"callbacks": [handler]})

    manager = CallbackManager.configure(inheritable_callbacks=[handler])
    run = manager.on_chain_start({"name": "Agent"}, {"input": "agent-input"}, run_id=uuid.uuid4())
    run.on_agent_action(AgentAction(tool="search", tool_input={"q": "agent-action-content"}, log=""))
    run.on_agent_finish(AgentFinish(return_values={"output": "agent-finish-content"}, log=""))
    run.on_chain_end({"output": "done"})

    spans = delivered(receiver, 2)
    check_traces(spans, 2)  # the chain, then the agent run
    app_thread = threading.get_ident()
    assert mask.threads, "the mask never ran"
    assert app_thread not in mask.threads, "the mask ran on the application's thread"
    masked = " ".join(mask.texts)
    for content in ("chain-input-content", "custom-event-content", "agent-action-content", "agent-finish-content"):
        assert content in masked, f"{content!r} never went through the mask"

    events = {name: attrs for span in spans for name, attrs in span.events}
    assert "CUSTOM-EVENT-CONTENT" in str(events["progress"])
    assert "AGENT-ACTION-CONTENT" in str(events["agent_action"])
    assert "AGENT-FINISH-CONTENT" in str(events["agent_finish"])
    assert events["agent_action"]["gen_ai.tool.name"] == "search"
