"""Every span attribute name the package writes, in one place.

Names come from Sentry's own registry (``sentry-conventions``) wherever Sentry defines
them, and from OpenTelemetry's stable semantic conventions for the SDK's resource keys. A few
spellings that Sentry still reads but marks deprecated (the older token-subset names) are
looked up in the registry's metadata instead, so that importing this module emits no
deprecation warnings and a typo still fails at import time.
"""

from __future__ import annotations

from opentelemetry.semconv.attributes import telemetry_attributes as _telemetry
from sentry_conventions.attributes import ATTRIBUTE_METADATA
from sentry_conventions.attributes import ATTRIBUTE_NAMES as _S


def _registered(name: str) -> str:
    """Return ``name`` after checking that Sentry's registry knows it."""
    if name not in ATTRIBUTE_METADATA:  # pragma: no cover - guards against registry drift
        raise KeyError(f"{name!r} is not in sentry-conventions")
    return name


# Sentry span fields
SENTRY_OP = _S.SENTRY_OP
SENTRY_DESCRIPTION = _S.SENTRY_DESCRIPTION
SENTRY_ENVIRONMENT = _S.SENTRY_ENVIRONMENT
SENTRY_RELEASE = _S.SENTRY_RELEASE
USER_ID = _S.USER_ID
CLIENT_SAMPLE_RATE = _S.SENTRY_CLIENT_SAMPLE_RATE
SESSION_ID = _S.SESSION_ID
ERROR_TYPE = _S.ERROR_TYPE

# Values of sentry.op, by what ran (Sentry's AI views select spans by them)
OP_INVOKE_AGENT = "gen_ai.invoke_agent"
OP_CHAT = "gen_ai.chat"
OP_TEXT_COMPLETION = "gen_ai.text_completion"
OP_EMBEDDINGS = "gen_ai.embeddings"
OP_EXECUTE_TOOL = "gen_ai.execute_tool"
OP_FUNCTION = "function"  # chains, graph nodes, retrievers: never gen_ai.*, or Sentry counts an LLM call

# gen_ai: operation and identity
OPERATION_NAME = _S.GEN_AI_OPERATION_NAME
CONVERSATION_ID = _S.GEN_AI_CONVERSATION_ID
AGENT_NAME = _S.GEN_AI_AGENT_NAME
PROVIDER_NAME = _S.GEN_AI_PROVIDER_NAME
TOOL_NAME = _S.GEN_AI_TOOL_NAME
TOOL_DESCRIPTION = _S.GEN_AI_TOOL_DESCRIPTION

# gen_ai: request
REQUEST_MODEL = _S.GEN_AI_REQUEST_MODEL
REQUEST_TEMPERATURE = _S.GEN_AI_REQUEST_TEMPERATURE
REQUEST_MAX_TOKENS = _S.GEN_AI_REQUEST_MAX_TOKENS
REQUEST_TOP_P = _S.GEN_AI_REQUEST_TOP_P
REQUEST_TOP_K = _S.GEN_AI_REQUEST_TOP_K
REQUEST_FREQUENCY_PENALTY = _S.GEN_AI_REQUEST_FREQUENCY_PENALTY
REQUEST_PRESENCE_PENALTY = _S.GEN_AI_REQUEST_PRESENCE_PENALTY
REQUEST_SEED = _S.GEN_AI_REQUEST_SEED
REQUEST_STOP_SEQUENCES = _S.GEN_AI_REQUEST_STOP_SEQUENCES
REQUEST_REASONING_LEVEL = _S.GEN_AI_REQUEST_REASONING_LEVEL

# gen_ai: response
RESPONSE_MODEL = _S.GEN_AI_RESPONSE_MODEL
RESPONSE_ID = _S.GEN_AI_RESPONSE_ID
RESPONSE_FINISH_REASONS = _S.GEN_AI_RESPONSE_FINISH_REASONS
RESPONSE_STREAMING = _S.GEN_AI_RESPONSE_STREAMING
RESPONSE_TIME_TO_FIRST_CHUNK = _S.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK

# gen_ai: usage (inclusive totals, and the subsets under both spellings Sentry reads)
USAGE_INPUT_TOKENS = _S.GEN_AI_USAGE_INPUT_TOKENS
USAGE_OUTPUT_TOKENS = _S.GEN_AI_USAGE_OUTPUT_TOKENS
USAGE_TOTAL_TOKENS = _S.GEN_AI_USAGE_TOTAL_TOKENS
USAGE_CACHE_READ = _S.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS
USAGE_CACHE_READ_LEGACY = _registered("gen_ai.usage.input_tokens.cached")
USAGE_CACHE_WRITE = _S.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS
USAGE_CACHE_WRITE_LEGACY = _registered("gen_ai.usage.input_tokens.cache_write")
USAGE_REASONING = _S.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS
USAGE_REASONING_LEGACY = _registered("gen_ai.usage.output_tokens.reasoning")

# gen_ai: cost in USD
COST_INPUT = _S.GEN_AI_COST_INPUT_TOKENS
COST_OUTPUT = _S.GEN_AI_COST_OUTPUT_TOKENS
COST_TOTAL = _S.GEN_AI_COST_TOTAL_TOKENS

# gen_ai: content (never sent in Privacy Mode)
INPUT_MESSAGES = _S.GEN_AI_INPUT_MESSAGES
OUTPUT_MESSAGES = _S.GEN_AI_OUTPUT_MESSAGES
SYSTEM_INSTRUCTIONS = _S.GEN_AI_SYSTEM_INSTRUCTIONS
TOOL_DEFINITIONS = _S.GEN_AI_TOOL_DEFINITIONS
TOOL_CALL_ARGUMENTS = _S.GEN_AI_TOOL_CALL_ARGUMENTS
TOOL_CALL_RESULT = _S.GEN_AI_TOOL_CALL_RESULT
EMBEDDINGS_INPUT = _S.GEN_AI_EMBEDDINGS_INPUT

#: What generation spans carry in place of their messages in Privacy Mode: Sentry's Conversations
#: view lists a conversation only when its model calls have both message attributes, and shows
#: this literal value as filtered content.
FILTERED = "[Filtered]"
PRIVATE_PLACEHOLDERS: tuple[str, ...] = (INPUT_MESSAGES, OUTPUT_MESSAGES)

# Content that Sentry has no name for: the widely read OpenInference names.
INPUT_VALUE = "input.value"
OUTPUT_VALUE = "output.value"
RETRIEVAL_DOCUMENTS = "retrieval.documents"

# Our own namespace.
TRACE_METADATA_PREFIX = "trace.metadata."
USAGE_SOURCE = "sentry_llm_callbacks.usage.source"  # "provider" or "missing"
COST_SOURCE = "sentry_llm_callbacks.cost.source"  # "provider" or "price_table"
RUN_ABANDONED = "sentry_llm_callbacks.run.abandoned"
RUN_CANCELLED = "sentry_llm_callbacks.run.cancelled"  # asyncio cancelled the task: status ERROR "cancelled"
STREAM_CLOSED_EARLY = "sentry_llm_callbacks.stream.closed_early"  # the consumer stopped reading: not an error
RETRIEVAL_DOCUMENT_COUNT = "sentry_llm_callbacks.retrieval.document_count"
EMBEDDINGS_INPUT_COUNT = "sentry_llm_callbacks.embeddings.input_count"
LANGGRAPH_NODE = "sentry_llm_callbacks.langgraph.node"
LANGGRAPH_STEP = "sentry_llm_callbacks.langgraph.step"
LANGGRAPH_INTERRUPTED = "sentry_llm_callbacks.langgraph.interrupted"
LANGGRAPH_HANDOFF = "sentry_llm_callbacks.langgraph.handoff"

# Span events (Sentry drops span events; other OTLP backends keep them)
EVENT_RETRY_ATTEMPT = "retry.attempt"
EVENT_CUSTOM_DATA = "data"

# Resource
SERVICE_NAME = _S.SERVICE_NAME
SERVICE_VERSION = _S.SERVICE_VERSION
TELEMETRY_SDK_NAME = _telemetry.TELEMETRY_SDK_NAME
TELEMETRY_SDK_VERSION = _telemetry.TELEMETRY_SDK_VERSION
TELEMETRY_SDK_LANGUAGE = _telemetry.TELEMETRY_SDK_LANGUAGE
# OpenTelemetry's key; Sentry registers only "resource."-prefixed spellings, deprecated for sentry.environment.
DEPLOYMENT_ENVIRONMENT = "deployment.environment.name"

# Exception event fields (OpenTelemetry semantic conventions, which Sentry registers too)
EXCEPTION_TYPE = _S.EXCEPTION_TYPE
EXCEPTION_MESSAGE = _S.EXCEPTION_MESSAGE
EXCEPTION_STACKTRACE = _S.EXCEPTION_STACKTRACE

#: Attributes known not to carry prompt, completion or document content. Privacy Mode is an
#: allowlist: everything outside this set (and the prefixes below) is treated as content.
NON_CONTENT: frozenset[str] = frozenset(
    {
        SENTRY_OP,
        SENTRY_DESCRIPTION,
        SENTRY_ENVIRONMENT,
        SENTRY_RELEASE,
        USER_ID,
        CLIENT_SAMPLE_RATE,
        SESSION_ID,
        ERROR_TYPE,
        OPERATION_NAME,
        CONVERSATION_ID,
        AGENT_NAME,
        PROVIDER_NAME,
        TOOL_NAME,
        # Not TOOL_DESCRIPTION: a tool's description is part of the prompt the model receives.
        REQUEST_MODEL,
        REQUEST_TEMPERATURE,
        REQUEST_MAX_TOKENS,
        REQUEST_TOP_P,
        REQUEST_TOP_K,
        REQUEST_FREQUENCY_PENALTY,
        REQUEST_PRESENCE_PENALTY,
        REQUEST_SEED,
        REQUEST_STOP_SEQUENCES,
        REQUEST_REASONING_LEVEL,
        RESPONSE_MODEL,
        RESPONSE_ID,
        RESPONSE_FINISH_REASONS,
        RESPONSE_STREAMING,
        RESPONSE_TIME_TO_FIRST_CHUNK,
        USAGE_INPUT_TOKENS,
        USAGE_OUTPUT_TOKENS,
        USAGE_TOTAL_TOKENS,
        USAGE_CACHE_READ,
        USAGE_CACHE_READ_LEGACY,
        USAGE_CACHE_WRITE,
        USAGE_CACHE_WRITE_LEGACY,
        USAGE_REASONING,
        USAGE_REASONING_LEGACY,
        COST_INPUT,
        COST_OUTPUT,
        COST_TOTAL,
        USAGE_SOURCE,
        COST_SOURCE,
        RUN_ABANDONED,
        RUN_CANCELLED,
        STREAM_CLOSED_EARLY,
        RETRIEVAL_DOCUMENT_COUNT,
        EMBEDDINGS_INPUT_COUNT,
        LANGGRAPH_NODE,
        LANGGRAPH_STEP,
        LANGGRAPH_INTERRUPTED,
        LANGGRAPH_HANDOFF,
    }
)
NON_CONTENT_PREFIXES: tuple[str, ...] = (TRACE_METADATA_PREFIX,)

#: Every key we send that is not a live key of Sentry's registry, with the reason. A key ending
#: in "." stands for every key under it. The README's "How it looks in Sentry" lists the same.
OWN_KEYS: dict[str, str] = {
    INPUT_VALUE: "chain / graph-node / query input; Sentry has no key for it (OpenInference's name)",
    OUTPUT_VALUE: "chain / graph-node / query output; Sentry has no key for it (OpenInference's name)",
    RETRIEVAL_DOCUMENTS: "retrieved documents; Sentry's only key for them (ai.documents) is deprecated",
    TRACE_METADATA_PREFIX: "custom trace metadata (the gateway's trace.metadata.* convention)",
    USAGE_CACHE_READ_LEGACY: "older spelling Sentry still reads (backfilled); sent beside the current one",
    USAGE_CACHE_WRITE_LEGACY: "older spelling Sentry still reads (backfilled); sent beside the current one",
    USAGE_REASONING_LEGACY: "older spelling Sentry still reads (backfilled); sent beside the current one",
    "sentry_llm_callbacks.": "this package's own facts about a run (usage/cost source, cancelled, closed early, "
    "abandoned, LangGraph node/step/interrupt/handoff, document and input counts)",
    DEPLOYMENT_ENVIRONMENT: "resource: OpenTelemetry's environment key (Sentry reads sentry.environment on spans)",
    "telemetry.sdk.": "resource: OpenTelemetry's SDK identification",
    "service.instance.id": "resource: added by the OpenTelemetry SDK",
    EVENT_RETRY_ATTEMPT: "span event (Sentry drops span events): which retry attempt",
    EVENT_CUSTOM_DATA: "span event of a LangChain custom event (Sentry drops span events)",
}


def is_content(name: str) -> bool:
    """True unless ``name`` is known to carry no prompt, completion or document text."""
    return name not in NON_CONTENT and not name.startswith(NON_CONTENT_PREFIXES)
