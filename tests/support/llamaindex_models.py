"""LlamaIndex pieces several suites build on: a small vector index over mock embeddings, and
LlamaIndex's ``OpenAI`` against the local OpenAI-compatible server."""

from __future__ import annotations

from typing import Any

from llama_index.core import Document, VectorStoreIndex
from llama_index.core.callbacks import CallbackManager
from llama_index.core.embeddings import MockEmbedding

from tests.support.openai_server import OpenAIServer

DOCS = [
    "Runbook: restart the payments pod when charges fail.",
    "Postmortem: null card tokens came from mobile v3.2.",
    "On-call: page the payments team.",
]


def build_index(callback_manager: CallbackManager | None = None) -> VectorStoreIndex:
    kwargs = {"callback_manager": callback_manager} if callback_manager else {}
    return VectorStoreIndex.from_documents(
        [Document(text=t) for t in DOCS], embed_model=MockEmbedding(embed_dim=8), **kwargs
    )


def li_openai(server: OpenAIServer, **kwargs: Any) -> Any:
    from llama_index.llms.openai import OpenAI

    return OpenAI(model="gpt-4o-mini", api_base=server.base_url, api_key="sk-test", **kwargs)
