"""Tests of sentry_llm_callbacks.langchain: LangChain and LangGraph runs as spans."""
