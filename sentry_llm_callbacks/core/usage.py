"""Token usage and cost, normalised to what Sentry reads.

Sentry's totals are inclusive: ``input_tokens`` includes cached input, ``output_tokens``
includes reasoning. Each provider shape has its own small function returning a
:class:`Usage`; a missing field yields None, never 0.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

from sentry_llm_callbacks.base.log import log_once
from sentry_llm_callbacks.core import attributes as attr
from sentry_llm_callbacks.core.message_shapes import get_field


@dataclass(slots=True)
class Usage:
    """Token counts and costs of one model call; absent values are None. Never changed once
    made (``replace`` makes a new one); not frozen, as one is made on every model call."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    reasoning_tokens: int | None = None
    cost_input: float | None = None
    cost_output: float | None = None
    cost_total: float | None = None

    @property
    def has_tokens(self) -> bool:
        return self.input_tokens is not None or self.output_tokens is not None or self.total_tokens is not None

    @property
    def has_cost(self) -> bool:
        return self.cost_total is not None or self.cost_input is not None or self.cost_output is not None

    def with_cost_from(self, other: Usage | None) -> Usage:
        if other is None or self.has_cost or not other.has_cost:
            return self
        return self.with_costs(other.cost_input, other.cost_output, other.cost_total)

    def with_costs(self, cost_input: float | None, cost_output: float | None, cost_total: float | None) -> Usage:
        """These counts with these costs (``dataclasses.replace`` costs several times as much)."""
        return Usage(
            self.input_tokens,
            self.output_tokens,
            self.total_tokens,
            self.cache_read_tokens,
            self.cache_write_tokens,
            self.reasoning_tokens,
            cost_input,
            cost_output,
            cost_total,
        )


def _int(value: Any) -> int | None:
    if type(value) is int:  # the common case, ahead of the subclass checks
        return value if value >= 0 else None
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float) and value >= 0 and value.is_integer():
        return int(value)
    return None


def _float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)) and value >= 0 and value == value:
        return float(value)
    return None


def _subset(name: str, part: int | None, whole: int | None) -> int | None:
    """A subset count, clamped to its total (never more than the whole)."""
    if part is None or whole is None or part <= whole:
        return part
    log_once(
        f"clamp-{name}",
        logging.WARNING,
        "Provider reported %s=%d above its total %d; clamped to the total.",
        name,
        part,
        whole,
    )
    return whole


def finish(usage: Usage) -> Usage:
    """Fill a missing total and clamp subsets to their totals."""
    total = usage.total_tokens
    if total is None and usage.input_tokens is not None and usage.output_tokens is not None:
        total = usage.input_tokens + usage.output_tokens
    cost_total = usage.cost_total
    if cost_total is None and usage.cost_input is not None and usage.cost_output is not None:
        cost_total = usage.cost_input + usage.cost_output
    if total == usage.total_tokens and cost_total == usage.cost_total and _within(usage):
        return usage
    return replace(
        usage,
        total_tokens=total,
        cost_total=cost_total,
        cache_read_tokens=_subset("cache_read_tokens", usage.cache_read_tokens, usage.input_tokens),
        cache_write_tokens=_subset("cache_write_tokens", usage.cache_write_tokens, usage.input_tokens),
        reasoning_tokens=_subset("reasoning_tokens", usage.reasoning_tokens, usage.output_tokens),
    )


def _within(usage: Usage) -> bool:
    """True if every subset is within its total (nothing to clamp)."""
    for part, whole in (
        (usage.cache_read_tokens, usage.input_tokens),
        (usage.cache_write_tokens, usage.input_tokens),
        (usage.reasoning_tokens, usage.output_tokens),
    ):
        if part is not None and whole is not None and part > whole:
            return False
    return True


def from_langchain(usage_metadata: Any) -> Usage | None:
    """LangChain's ``AIMessage.usage_metadata`` (already inclusive)."""
    if not usage_metadata:
        return None
    inputs = get_field(usage_metadata, "input_token_details") or {}
    outputs = get_field(usage_metadata, "output_token_details") or {}
    usage = Usage(
        input_tokens=_int(get_field(usage_metadata, "input_tokens")),
        output_tokens=_int(get_field(usage_metadata, "output_tokens")),
        total_tokens=_int(get_field(usage_metadata, "total_tokens")),
        cache_read_tokens=_int(get_field(inputs, "cache_read")),
        cache_write_tokens=_int(get_field(inputs, "cache_creation")),
        reasoning_tokens=_int(get_field(outputs, "reasoning")),
    )
    return finish(usage) if usage.has_tokens else None


def from_openai(token_usage: Any) -> Usage | None:
    """OpenAI and OpenAI-compatible ``usage`` (also OpenRouter's, with its ``cost``)."""
    if not token_usage:
        return None
    prompt_details = get_field(token_usage, "prompt_tokens_details") or {}
    completion_details = get_field(token_usage, "completion_tokens_details") or {}
    cost_details = get_field(token_usage, "cost_details") or {}
    usage = Usage(
        input_tokens=_int(get_field(token_usage, "prompt_tokens")),
        output_tokens=_int(get_field(token_usage, "completion_tokens")),
        total_tokens=_int(get_field(token_usage, "total_tokens")),
        cache_read_tokens=_int(get_field(prompt_details, "cached_tokens")),
        cache_write_tokens=_int(get_field(prompt_details, "cache_write_tokens")),
        reasoning_tokens=_int(get_field(completion_details, "reasoning_tokens")),
        cost_total=_float(get_field(token_usage, "cost")),
        cost_input=_float(get_field(cost_details, "upstream_inference_prompt_cost")),
        cost_output=_float(get_field(cost_details, "upstream_inference_completions_cost")),
    )
    if not usage.has_tokens and not usage.has_cost:
        return None
    return finish(usage)


def _cache_exclusive(block: Any, fresh: str, read: str, write: str, output: str, total: str | None) -> Usage | None:
    """Usage where the input count excludes cache reads and writes (Sentry's total includes them)."""
    if not block:
        return None
    base = _int(get_field(block, fresh))
    reads = _int(get_field(block, read))
    writes = _int(get_field(block, write))
    usage = Usage(
        input_tokens=None if base is None else base + (reads or 0) + (writes or 0),
        output_tokens=_int(get_field(block, output)),
        total_tokens=_int(get_field(block, total)) if total else None,
        cache_read_tokens=reads,
        cache_write_tokens=writes,
    )
    return finish(usage) if usage.has_tokens else None


def from_anthropic(usage_block: Any) -> Usage | None:
    """Anthropic ``usage``: ``input_tokens`` excludes cache reads and writes."""
    return _cache_exclusive(
        usage_block, "input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens", "output_tokens", None
    )


def from_gemini(usage_metadata: Any) -> Usage | None:
    """Google Gemini / Vertex ``usage_metadata``: ``prompt_token_count`` includes cached content;
    ``candidates_token_count`` excludes thinking tokens, which Sentry's output count includes."""
    if not usage_metadata:
        return None
    prompt = _int(get_field(usage_metadata, "prompt_token_count"))
    candidates = _int(get_field(usage_metadata, "candidates_token_count"))
    thoughts = _int(get_field(usage_metadata, "thoughts_token_count"))
    output = None if candidates is None and thoughts is None else (candidates or 0) + (thoughts or 0)
    usage = Usage(
        input_tokens=prompt,
        output_tokens=output,
        total_tokens=_int(get_field(usage_metadata, "total_token_count")),
        cache_read_tokens=_int(get_field(usage_metadata, "cached_content_token_count")),
        reasoning_tokens=thoughts,
    )
    return finish(usage) if usage.has_tokens else None


def from_bedrock_converse(usage_block: Any) -> Usage | None:
    """AWS Bedrock Converse ``usage``: ``inputTokens`` excludes cache reads and writes."""
    return _cache_exclusive(
        usage_block, "inputTokens", "cacheReadInputTokens", "cacheWriteInputTokens", "outputTokens", "totalTokens"
    )


def from_bedrock_invocation_metrics(metrics: Any) -> Usage | None:
    """AWS Bedrock ``amazon-bedrock-invocationMetrics`` (InvokeModel responses)."""
    if not metrics:
        return None
    usage = Usage(
        input_tokens=_int(get_field(metrics, "inputTokenCount")),
        output_tokens=_int(get_field(metrics, "outputTokenCount")),
    )
    return finish(usage) if usage.has_tokens else None


def from_ollama(response: Any) -> Usage | None:
    """Ollama: ``prompt_eval_count`` and ``eval_count``."""
    if not response:
        return None
    usage = Usage(
        input_tokens=_int(get_field(response, "prompt_eval_count")),
        output_tokens=_int(get_field(response, "eval_count")),
    )
    return finish(usage) if usage.has_tokens else None


def from_deepseek(token_usage: Any) -> Usage | None:
    """DeepSeek: OpenAI's shape, with cache hits as ``prompt_cache_hit_tokens``."""
    usage = from_openai(token_usage)
    hits = _int(get_field(token_usage, "prompt_cache_hit_tokens"))
    if usage is None or hits is None or usage.cache_read_tokens is not None:
        return usage
    return finish(replace(usage, cache_read_tokens=hits))


def detect(payload: Any) -> Usage | None:
    """Usage from a provider payload of any supported shape (a response, or its usage block)."""
    if payload is None:
        return None
    for key in ("usage", "token_usage", "usage_metadata", "amazon-bedrock-invocationMetrics"):
        inner = get_field(payload, key)
        if inner:
            found = detect(inner)
            if found is not None:
                return found
    if get_field(payload, "prompt_token_count") is not None or get_field(payload, "candidates_token_count") is not None:
        return from_gemini(payload)
    if get_field(payload, "inputTokens") is not None or get_field(payload, "outputTokens") is not None:
        return from_bedrock_converse(payload)
    if get_field(payload, "inputTokenCount") is not None:
        return from_bedrock_invocation_metrics(payload)
    if get_field(payload, "prompt_eval_count") is not None or get_field(payload, "eval_count") is not None:
        return from_ollama(payload)
    if get_field(payload, "prompt_cache_hit_tokens") is not None:
        return from_deepseek(payload)
    if (
        get_field(payload, "prompt_tokens") is not None
        or get_field(payload, "completion_tokens") is not None
        or get_field(payload, "cost") is not None
    ):
        return from_openai(payload)
    if get_field(payload, "input_tokens") is not None or get_field(payload, "output_tokens") is not None:
        if (
            get_field(payload, "input_token_details") is not None
            or get_field(payload, "output_token_details") is not None
        ):
            return from_langchain(payload)
        return from_anthropic(payload)
    return None


def usage_attributes(usage: Usage, cost_source: str = "provider") -> dict[str, int | float | str]:
    """Sentry's ``gen_ai.usage.*`` and ``gen_ai.cost.*`` attributes; absent values are left out."""
    # Written out: a loop over a table of fields costs twice as much, once per model call.
    out: dict[str, int | float | str] = {}
    if usage.input_tokens is not None:
        out[attr.USAGE_INPUT_TOKENS] = usage.input_tokens
    if usage.output_tokens is not None:
        out[attr.USAGE_OUTPUT_TOKENS] = usage.output_tokens
    if usage.total_tokens is not None:
        out[attr.USAGE_TOTAL_TOKENS] = usage.total_tokens
    if usage.cache_read_tokens is not None:
        out[attr.USAGE_CACHE_READ] = out[attr.USAGE_CACHE_READ_LEGACY] = usage.cache_read_tokens
    if usage.cache_write_tokens is not None:
        out[attr.USAGE_CACHE_WRITE] = out[attr.USAGE_CACHE_WRITE_LEGACY] = usage.cache_write_tokens
    if usage.reasoning_tokens is not None:
        out[attr.USAGE_REASONING] = out[attr.USAGE_REASONING_LEGACY] = usage.reasoning_tokens
    if usage.cost_input is not None:
        out[attr.COST_INPUT] = usage.cost_input
    if usage.cost_output is not None:
        out[attr.COST_OUTPUT] = usage.cost_output
    if usage.cost_total is not None:
        out[attr.COST_TOTAL] = usage.cost_total
    if usage.has_cost:
        out[attr.COST_SOURCE] = cost_source
    return out
