"""Token usage from every provider shape, client-side cost, and what arrives over the wire."""

from __future__ import annotations

import logging
from typing import Any

import pytest

import sentry_llm_callbacks as slc
from sentry_llm_callbacks.core.pricing import PriceTable, cost_of, normalise_model_id
from sentry_llm_callbacks.core.usage import Usage, detect, usage_attributes
from sentry_llm_callbacks.devtools.receiver import LocalReceiver
from sentry_llm_callbacks.langchain import SentryCallbackHandler
from tests.support.openai_server import OpenAIServer, Reply
from tests.support.spans import delivered

# (provider, case, payload as the provider or LangChain returns it, expected
#  (input, output, total, cache_read, cache_write, reasoning))
CASES: list[tuple[str, str, dict[str, Any], tuple[int | None, ...]]] = [
    ("langchain", "plain", {"input_tokens": 20, "output_tokens": 5, "total_tokens": 25}, (20, 5, 25, None, None, None)),
    (
        "langchain",
        "cached",
        {
            "input_tokens": 120,
            "output_tokens": 5,
            "total_tokens": 125,
            "input_token_details": {"cache_read": 100, "cache_creation": 10},
        },
        (120, 5, 125, 100, 10, None),
    ),
    (
        "langchain",
        "reasoning",
        {"input_tokens": 20, "output_tokens": 50, "total_tokens": 70, "output_token_details": {"reasoning": 40}},
        (20, 50, 70, None, None, 40),
    ),
    (
        "openai",
        "plain",
        {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
        (11, 7, 18, None, None, None),
    ),
    (
        "openai",
        "cached",
        {
            "prompt_tokens": 2006,
            "completion_tokens": 300,
            "total_tokens": 2306,
            "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
        },
        (2006, 300, 2306, 1920, None, None),
    ),
    (
        "openai",
        "reasoning",
        {
            "prompt_tokens": 75,
            "completion_tokens": 1186,
            "total_tokens": 1261,
            "completion_tokens_details": {"reasoning_tokens": 1024, "audio_tokens": 0},
        },
        (75, 1186, 1261, None, None, 1024),
    ),
    (
        "openrouter",
        "plain",
        {"prompt_tokens": 194, "completion_tokens": 2, "total_tokens": 196, "cost": 0.95},
        (194, 2, 196, None, None, None),
    ),
    (
        "openrouter",
        "cached",
        {
            "prompt_tokens": 194,
            "completion_tokens": 2,
            "total_tokens": 196,
            "cost": 0.5,
            "prompt_tokens_details": {"cached_tokens": 150},
            "cost_details": {"upstream_inference_cost": 0.5},
        },
        (194, 2, 196, 150, None, None),
    ),
    (
        "openrouter",
        "reasoning",
        {
            "prompt_tokens": 10,
            "completion_tokens": 90,
            "total_tokens": 100,
            "cost": 0.001,
            "completion_tokens_details": {"reasoning_tokens": 80},
        },
        (10, 90, 100, None, None, 80),
    ),
    # Anthropic's input_tokens excludes cache reads and writes: Sentry's total includes them.
    (
        "anthropic",
        "plain",
        {"usage": {"input_tokens": 2095, "output_tokens": 503}},
        (2095, 503, 2598, None, None, None),
    ),
    (
        "anthropic",
        "cached",
        {
            "usage": {
                "input_tokens": 50,
                "cache_read_input_tokens": 100000,
                "cache_creation_input_tokens": 248,
                "output_tokens": 503,
            }
        },
        (100298, 503, 100801, 100000, 248, None),
    ),
    ("anthropic", "reasoning", {"usage": {"input_tokens": 30, "output_tokens": 900}}, (30, 900, 930, None, None, None)),
    (
        "gemini",
        "plain",
        {"usage_metadata": {"prompt_token_count": 8, "candidates_token_count": 12, "total_token_count": 20}},
        (8, 12, 20, None, None, None),
    ),
    (
        "gemini",
        "cached",
        {
            "usage_metadata": {
                "prompt_token_count": 5000,
                "candidates_token_count": 40,
                "cached_content_token_count": 4096,
                "total_token_count": 5040,
            }
        },
        (5000, 40, 5040, 4096, None, None),
    ),
    # Gemini's candidates exclude thinking tokens; Sentry's output count includes them.
    (
        "gemini",
        "reasoning",
        {
            "usage_metadata": {
                "prompt_token_count": 10,
                "candidates_token_count": 20,
                "thoughts_token_count": 300,
                "total_token_count": 330,
            }
        },
        (10, 320, 330, None, None, 300),
    ),
    (
        "bedrock",
        "plain",
        {"usage": {"inputTokens": 30, "outputTokens": 12, "totalTokens": 42}},
        (30, 12, 42, None, None, None),
    ),
    (
        "bedrock",
        "cached",
        {
            "usage": {
                "inputTokens": 10,
                "outputTokens": 12,
                "totalTokens": 1522,
                "cacheReadInputTokens": 1000,
                "cacheWriteInputTokens": 500,
            }
        },
        (1510, 12, 1522, 1000, 500, None),
    ),
    (
        "bedrock",
        "reasoning",
        {"usage": {"inputTokens": 30, "outputTokens": 400, "totalTokens": 430}},
        (30, 400, 430, None, None, None),
    ),
    (
        "bedrock-invoke",
        "plain",
        {
            "amazon-bedrock-invocationMetrics": {
                "inputTokenCount": 19,
                "outputTokenCount": 54,
                "invocationLatency": 1405,
                "firstByteLatency": 436,
            }
        },
        (19, 54, 73, None, None, None),
    ),
    (
        "ollama",
        "plain",
        {"model": "llama3.2", "done": True, "prompt_eval_count": 26, "eval_count": 298},
        (26, 298, 324, None, None, None),
    ),
    (
        "mistral",
        "plain",
        {"usage": {"prompt_tokens": 16, "completion_tokens": 34, "total_tokens": 50}},
        (16, 34, 50, None, None, None),
    ),
    (
        "mistral",
        "cached",
        {
            "usage": {
                "prompt_tokens": 1016,
                "completion_tokens": 34,
                "total_tokens": 1050,
                "prompt_tokens_details": {"cached_tokens": 1000},
            }
        },
        (1016, 34, 1050, 1000, None, None),
    ),
    (
        "deepseek",
        "cached",
        {
            "usage": {
                "prompt_tokens": 1000,
                "completion_tokens": 20,
                "total_tokens": 1020,
                "prompt_cache_hit_tokens": 800,
                "prompt_cache_miss_tokens": 200,
            }
        },
        (1000, 20, 1020, 800, None, None),
    ),
    (
        "deepseek",
        "reasoning",
        {
            "usage": {
                "prompt_tokens": 30,
                "completion_tokens": 500,
                "total_tokens": 530,
                "completion_tokens_details": {"reasoning_tokens": 450},
            }
        },
        (30, 500, 530, None, None, 450),
    ),
]


def as_tuple(usage: Usage | None) -> tuple[int | None, ...]:
    assert usage is not None
    return (
        usage.input_tokens,
        usage.output_tokens,
        usage.total_tokens,
        usage.cache_read_tokens,
        usage.cache_write_tokens,
        usage.reasoning_tokens,
    )


@pytest.mark.parametrize(("provider", "case", "payload", "expected"), CASES, ids=[f"{p}-{c}" for p, c, _, _ in CASES])
def test_usage_from_every_provider_shape(
    provider: str, case: str, payload: dict[str, Any], expected: tuple[int | None, ...]
) -> None:
    assert as_tuple(detect(payload)) == expected


@pytest.mark.parametrize(("provider", "case", "payload", "expected"), CASES, ids=[f"{p}-{c}" for p, c, _, _ in CASES])
def test_usage_from_llamaindex_raw_responses(
    provider: str, case: str, payload: dict[str, Any], expected: tuple[int | None, ...]
) -> None:
    from llama_index.core.base.llms.types import ChatMessage, ChatResponse

    from sentry_llm_callbacks.llamaindex import usage_from_response

    response = ChatResponse(message=ChatMessage(role="assistant", content="x"), raw=payload)
    assert as_tuple(usage_from_response(response)) == expected


def test_both_spellings_of_the_subsets_are_sent() -> None:
    attrs = usage_attributes(
        Usage(
            input_tokens=10,
            output_tokens=5,
            total_tokens=15,
            cache_read_tokens=4,
            cache_write_tokens=2,
            reasoning_tokens=3,
        )
    )
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == attrs["gen_ai.usage.input_tokens.cached"] == 4
    assert attrs["gen_ai.usage.cache_creation.input_tokens"] == attrs["gen_ai.usage.input_tokens.cache_write"] == 2
    assert attrs["gen_ai.usage.reasoning.output_tokens"] == attrs["gen_ai.usage.output_tokens.reasoning"] == 3


def test_impossible_subsets_are_clamped_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    usage = detect(
        {
            "prompt_tokens": 10,
            "completion_tokens": 5,
            "prompt_tokens_details": {"cached_tokens": 50},
            "completion_tokens_details": {"reasoning_tokens": 9},
        }
    )
    assert as_tuple(usage) == (10, 5, 15, 10, None, 5)
    assert any("cache_read_tokens=50" in r.getMessage() for r in caplog.records)
    assert detect({"prompt_tokens": -3, "completion_tokens": 2}).input_tokens is None  # type: ignore[union-attr]


# --------------------------------------------------------------------------- cost


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("openai/gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("us.anthropic.claude-3-5-sonnet-20241022-v2:0", "claude-3-5-sonnet"),
        ("anthropic/claude-3.5-sonnet", "claude-3.5-sonnet"),
        ("claude-3-7-sonnet-latest", "claude-3-7-sonnet"),
        ("models/gemini-1.5-pro-002", "gemini-1.5-pro"),
        ("gemini-2.5-flash-preview-05-20", "gemini-2.5-flash"),
        ("meta-llama/Llama-3.3-70B-Instruct-Turbo", "llama-3.3-70b-instruct-turbo"),
        ("mistral-large-2411", "mistral-large"),
    ],
)
def test_model_ids_are_normalised(model: str, expected: str) -> None:
    assert normalise_model_id(model) == expected


def test_lookup_matches_known_models_and_refuses_to_guess() -> None:
    table = PriceTable()
    assert table.lookup("gpt-4o-mini-2024-07-18") == table.lookup("gpt-4o-mini")
    assert table.lookup("openai/gpt-4o") is not None
    assert table.lookup("claude-sonnet-4-20250514") == table.lookup("claude-sonnet-4")
    audio = table.lookup("gpt-4o-mini-audio-preview")  # its own row, not gpt-4o-mini's
    assert audio is not None and audio.source.endswith("/gpt-4o-mini-audio-preview")
    assert table.lookup("my-private-finetune") is None


def test_reference_cost_gpt_4o_mini_with_cached_input() -> None:
    # 800 fresh input x $0.15/M + 200 cached x $0.075/M + 500 output x $0.60/M
    usage = cost_of(
        Usage(input_tokens=1000, output_tokens=500, cache_read_tokens=200), PriceTable().lookup("gpt-4o-mini")
    )  # type: ignore[arg-type]
    assert usage.cost_input == pytest.approx(0.000135, abs=1e-9)
    assert usage.cost_output == pytest.approx(0.0003, abs=1e-9)
    assert usage.cost_total == pytest.approx(0.000435, abs=1e-9)


def test_reference_cost_claude_with_cache_reads_and_writes() -> None:
    # Anthropic raw usage: 100 fresh + 1000 cache reads + 500 cache writes, 300 output.
    # 100 x $3/M + 1000 x $0.30/M + 500 x $3.75/M = 0.002475; 300 x $15/M = 0.0045
    usage = detect(
        {
            "usage": {
                "input_tokens": 100,
                "cache_read_input_tokens": 1000,
                "cache_creation_input_tokens": 500,
                "output_tokens": 300,
            }
        }
    )
    assert usage is not None and usage.input_tokens == 1600
    priced = cost_of(usage, PriceTable().lookup("claude-3-5-sonnet-20241022"))  # type: ignore[arg-type]
    assert priced.cost_input == pytest.approx(0.002475, abs=1e-9)
    assert priced.cost_output == pytest.approx(0.0045, abs=1e-9)
    assert priced.cost_total == pytest.approx(0.006975, abs=1e-9)


def test_reference_cost_with_a_user_reasoning_price() -> None:
    # 1000 input x $1/M; 100 visible output x $2/M + 300 reasoning x $3/M
    table = PriceTable({"my-reasoner": {"input": 1e-6, "output": 2e-6, "reasoning": 3e-6}})
    priced = cost_of(Usage(input_tokens=1000, output_tokens=400, reasoning_tokens=300), table.lookup("my-reasoner"))  # type: ignore[arg-type]
    assert priced.cost_input == pytest.approx(0.001, abs=1e-9)
    assert priced.cost_output == pytest.approx(0.0011, abs=1e-9)
    assert priced.cost_total == pytest.approx(0.0021, abs=1e-9)


def test_bad_pricing_is_a_configuration_error() -> None:
    with pytest.raises(slc.ConfigurationError, match="pricing"):
        slc.configure(dsn="https://k@o1.ingest.sentry.io/1", pricing={"m": {"input": "cheap"}})
    with pytest.raises(slc.ConfigurationError, match="must not be negative"):
        slc.configure(dsn="https://k@o1.ingest.sentry.io/1", pricing={"m": {"input": -1, "output": 1}})


# --------------------------------------------------------------------------- over the wire


def chat_openai(server: OpenAIServer, **kwargs: Any) -> Any:
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(**{"model": "gpt-4o-mini", "base_url": server.base_url, "api_key": "sk-test", **kwargs})


@pytest.mark.parametrize("streaming", [False, True])
def test_chat_openai_cost_from_the_price_table(
    sentry: LocalReceiver, openai_server: OpenAIServer, streaming: bool
) -> None:
    openai_server.queue(
        Reply(
            content="hello there",
            usage={
                "prompt_tokens": 1000,
                "completion_tokens": 500,
                "total_tokens": 1500,
                "prompt_tokens_details": {"cached_tokens": 200},
            },
        )
    )
    model = chat_openai(openai_server, streaming=streaming, stream_usage=True)
    if streaming:
        list(model.stream("hi", config={"callbacks": [SentryCallbackHandler()]}))
    else:
        model.invoke("hi", config={"callbacks": [SentryCallbackHandler()]})
    (span,) = delivered(sentry, 1)
    a = span.attributes
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (1000, 500)
    assert a["gen_ai.usage.cache_read.input_tokens"] == 200
    assert a["gen_ai.cost.input_tokens"] == pytest.approx(0.000135, abs=1e-9)
    assert a["gen_ai.cost.output_tokens"] == pytest.approx(0.0003, abs=1e-9)
    assert a["gen_ai.cost.total_tokens"] == pytest.approx(0.000435, abs=1e-9)
    assert a["sentry_llm_callbacks.cost.source"] == "price_table"


def test_unknown_model_gets_no_cost(sentry: LocalReceiver, openai_server: OpenAIServer) -> None:
    openai_server.queue(Reply(model="acme-llm-7"))
    chat_openai(openai_server, model="acme-llm-7").invoke("hi", config={"callbacks": [SentryCallbackHandler()]})
    (span,) = delivered(sentry, 1)
    assert span.attributes["gen_ai.usage.input_tokens"] == 21
    assert not any(k.startswith("gen_ai.cost.") for k in span.attributes)


def test_user_pricing_extends_the_table(receiver: LocalReceiver, openai_server: OpenAIServer) -> None:
    slc.configure(dsn=receiver.dsn, pricing={"acme-llm-7": {"input": 1e-6, "output": 2e-6}})
    openai_server.queue(Reply(model="acme-llm-7"))  # 21 in, 7 out
    chat_openai(openai_server, model="acme-llm-7").invoke("hi", config={"callbacks": [SentryCallbackHandler()]})
    (span,) = delivered(receiver, 1)
    assert span.attributes["gen_ai.cost.total_tokens"] == pytest.approx(21e-6 + 14e-6, abs=1e-12)


def test_provider_cost_wins_over_the_table(sentry: LocalReceiver, openai_server: OpenAIServer) -> None:
    openai_server.queue(
        Reply(
            model="openai/gpt-4o-mini",
            usage={"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500, "cost": 0.123},
        )
    )
    chat_openai(openai_server).invoke("hi", config={"callbacks": [SentryCallbackHandler()]})
    (span,) = delivered(sentry, 1)
    assert span.attributes["gen_ai.cost.total_tokens"] == pytest.approx(0.123, abs=1e-12)
    assert span.attributes["sentry_llm_callbacks.cost.source"] == "provider"


def test_langgraph_agent_counts_each_call_once(sentry: LocalReceiver, openai_server: OpenAIServer) -> None:
    from langchain_core.tools import tool
    from langgraph.prebuilt import create_react_agent

    @tool
    def lookup(q: str) -> str:
        """Look up."""
        return "found"

    openai_server.queue(
        Reply(content="", tool_calls=[{"id": "c1", "name": "lookup", "args": {"q": "x"}}]), Reply(content="done")
    )
    agent = create_react_agent(chat_openai(openai_server), [lookup])
    agent.invoke({"messages": [("human", "go")]}, config={"callbacks": [SentryCallbackHandler()]})
    spans = delivered(sentry)
    with_usage = [s for s in spans if "gen_ai.usage.input_tokens" in s.attributes]
    assert len(with_usage) == 2 and all(s.op == "gen_ai.chat" for s in with_usage)
    assert (
        sum(s.attributes["gen_ai.usage.input_tokens"] for s in spans if "gen_ai.usage.input_tokens" in s.attributes)
        == 42
    )
