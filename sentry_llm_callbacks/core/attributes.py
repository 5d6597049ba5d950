"""Every span attribute name the package writes, in one place.

Names come from Sentry's own registry (``sentry-conventions``) wherever Sentry defines
them, and from OpenTelemetry's stable semantic conventions for the SDK's resource keys. They
are written out as literals, so that importing the package does not load the registry (a
sixth of the package's import time); the tables at the end name where each comes from, and
tests hold every one equal to its source (and every sent key registered).
"""

from __future__ import annotations

# Sentry span fields
SENTRY_OP = "sentry.op"
SENTRY_DESCRIPTION = "sentry.description"
SENTRY_ENVIRONMENT = "sentry.environment"
SENTRY_RELEASE = "sentry.release"
USER_ID = "user.id"
CLIENT_SAMPLE_RATE = "sentry.client_sample_rate"
SESSION_ID = "session.id"
ERROR_TYPE = "error.type"
#: On a root span that continues an earlier trace: ``<trace id>-<span id>-<1 if sampled>`` of the
#: earlier root, as Sentry's JavaScript SDK sets it. Sentry's trace view finds a trace's "next
#: trace" by searching this attribute (span links are not searchable there yet).
PREVIOUS_TRACE = "sentry.previous_trace"

# Span link attributes
LINK_TYPE = "sentry.link.type"
#: The ``sentry.link.type`` of a link to the root of the trace before this one in the same
#: conversation; Sentry's trace view shows it as the "previous trace".
LINK_PREVIOUS_TRACE = "previous_trace"

# Values of sentry.op, by what ran (Sentry's AI views select spans by them)
OP_INVOKE_AGENT = "gen_ai.invoke_agent"
OP_CHAT = "gen_ai.chat"
OP_TEXT_COMPLETION = "gen_ai.text_completion"
OP_EMBEDDINGS = "gen_ai.embeddings"
OP_EXECUTE_TOOL = "gen_ai.execute_tool"
OP_EVALUATE = "gen_ai.evaluate"  # a score on a run (an evaluation span, as Sentry's trace view reads it)
OP_FUNCTION = "function"  # chains, graph nodes, retrievers: never gen_ai.*, or Sentry counts an LLM call

# OpenTelemetry's GenAI evaluation attributes (a score); Sentry's registry has none yet
EVALUATION_NAME = "gen_ai.evaluation.name"
EVALUATION_SCORE_VALUE = "gen_ai.evaluation.score.value"
EVALUATION_SCORE_LABEL = "gen_ai.evaluation.score.label"
EVALUATION_EXPLANATION = "gen_ai.evaluation.explanation"

# gen_ai: operation and identity
OPERATION_NAME = "gen_ai.operation.name"
CONVERSATION_ID = "gen_ai.conversation.id"
AGENT_NAME = "gen_ai.agent.name"
PROVIDER_NAME = "gen_ai.provider.name"
TOOL_NAME = "gen_ai.tool.name"
TOOL_DESCRIPTION = "gen_ai.tool.description"
# The named prompt a generation was made from (a name, not the prompt's text: sent in Privacy Mode)
PROMPT_NAME = "gen_ai.prompt.name"

# gen_ai: request
REQUEST_MODEL = "gen_ai.request.model"
REQUEST_TEMPERATURE = "gen_ai.request.temperature"
REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
REQUEST_TOP_P = "gen_ai.request.top_p"
REQUEST_TOP_K = "gen_ai.request.top_k"
REQUEST_FREQUENCY_PENALTY = "gen_ai.request.frequency_penalty"
REQUEST_PRESENCE_PENALTY = "gen_ai.request.presence_penalty"
REQUEST_SEED = "gen_ai.request.seed"
REQUEST_STOP_SEQUENCES = "gen_ai.request.stop_sequences"
REQUEST_REASONING_LEVEL = "gen_ai.request.reasoning.level"

# gen_ai: response
RESPONSE_MODEL = "gen_ai.response.model"
RESPONSE_ID = "gen_ai.response.id"
RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
RESPONSE_STREAMING = "gen_ai.response.streaming"
RESPONSE_TIME_TO_FIRST_CHUNK = "gen_ai.response.time_to_first_chunk"

# gen_ai: usage (inclusive totals, and the subsets under both spellings Sentry reads)
USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
USAGE_TOTAL_TOKENS = "gen_ai.usage.total_tokens"
USAGE_CACHE_READ = "gen_ai.usage.cache_read.input_tokens"
USAGE_CACHE_READ_LEGACY = "gen_ai.usage.input_tokens.cached"
USAGE_CACHE_WRITE = "gen_ai.usage.cache_creation.input_tokens"
USAGE_CACHE_WRITE_LEGACY = "gen_ai.usage.input_tokens.cache_write"
USAGE_REASONING = "gen_ai.usage.reasoning.output_tokens"
USAGE_REASONING_LEGACY = "gen_ai.usage.output_tokens.reasoning"

# gen_ai: cost in USD
COST_INPUT = "gen_ai.cost.input_tokens"
COST_OUTPUT = "gen_ai.cost.output_tokens"
COST_TOTAL = "gen_ai.cost.total_tokens"

# gen_ai: content (never sent in Privacy Mode)
INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"
SYSTEM_INSTRUCTIONS = "gen_ai.system_instructions"
TOOL_DEFINITIONS = "gen_ai.tool.definitions"
TOOL_CALL_ARGUMENTS = "gen_ai.tool.call.arguments"
TOOL_CALL_RESULT = "gen_ai.tool.call.result"
EMBEDDINGS_INPUT = "gen_ai.embeddings.input"

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
PROMPT_VERSION = "sentry_llm_callbacks.prompt.version"  # beside gen_ai.prompt.name: Sentry registers no version key

# Span events (Sentry drops span events; other OTLP backends keep them)
EVENT_RETRY_ATTEMPT = "retry.attempt"
EVENT_CUSTOM_DATA = "data"

# Resource
SERVICE_NAME = "service.name"
SERVICE_VERSION = "service.version"
TELEMETRY_SDK_NAME = "telemetry.sdk.name"
TELEMETRY_SDK_VERSION = "telemetry.sdk.version"
TELEMETRY_SDK_LANGUAGE = "telemetry.sdk.language"
# OpenTelemetry's key; Sentry registers only "resource."-prefixed spellings, deprecated for sentry.environment.
DEPLOYMENT_ENVIRONMENT = "deployment.environment.name"

# Exception event fields (OpenTelemetry semantic conventions, which Sentry registers too)
EXCEPTION_TYPE = "exception.type"
EXCEPTION_MESSAGE = "exception.message"
EXCEPTION_STACKTRACE = "exception.stacktrace"

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
        PREVIOUS_TRACE,
        OPERATION_NAME,
        EVALUATION_NAME,
        EVALUATION_SCORE_VALUE,
        EVALUATION_SCORE_LABEL,
        CONVERSATION_ID,
        AGENT_NAME,
        PROVIDER_NAME,
        TOOL_NAME,
        PROMPT_NAME,
        PROMPT_VERSION,
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
#: in "." stands for every key under it. docs/sentry.md ("Data scrubbing") lists the same.
OWN_KEYS: dict[str, str] = {
    INPUT_VALUE: "chain / graph-node / query input; Sentry has no key for it (OpenInference's name)",
    OUTPUT_VALUE: "chain / graph-node / query output; Sentry has no key for it (OpenInference's name)",
    RETRIEVAL_DOCUMENTS: "retrieved documents; Sentry's only key for them (ai.documents) is deprecated",
    TRACE_METADATA_PREFIX: "custom trace metadata (the gateway's trace.metadata.* convention)",
    PREVIOUS_TRACE: "a resumed run's root: the interrupted run's root it continues, as Sentry's JavaScript SDK "
    "sets it; Sentry's trace view searches it for the next trace",
    USAGE_CACHE_READ_LEGACY: "older spelling Sentry still reads (backfilled); sent beside the current one",
    USAGE_CACHE_WRITE_LEGACY: "older spelling Sentry still reads (backfilled); sent beside the current one",
    USAGE_REASONING_LEGACY: "older spelling Sentry still reads (backfilled); sent beside the current one",
    PROMPT_VERSION: "the version of the named prompt in gen_ai.prompt.name (a hub commit hash, a version label); "
    "Sentry registers no prompt version key",
    "sentry_llm_callbacks.": "this package's own facts about a run (usage/cost source, cancelled, closed early, "
    "abandoned, LangGraph node/step/interrupt/handoff, document and input counts)",
    DEPLOYMENT_ENVIRONMENT: "resource: OpenTelemetry's environment key (Sentry reads sentry.environment on spans)",
    "telemetry.sdk.": "resource: OpenTelemetry's SDK identification",
    "service.instance.id": "resource: added by the OpenTelemetry SDK",
    EVENT_RETRY_ATTEMPT: "span event (Sentry drops span events): which retry attempt",
    EVENT_CUSTOM_DATA: "span event of a LangChain custom event (Sentry drops span events)",
    "gen_ai.evaluation.": "a score (OpenTelemetry's GenAI evaluation attributes; Sentry reads the "
    "evaluation from gen_ai.input.messages / gen_ai.output.messages, which are sent too)",
}


def is_content(name: str) -> bool:
    """True unless ``name`` is known to carry no prompt, completion or document text."""
    return name not in NON_CONTENT and not name.startswith(NON_CONTENT_PREFIXES)


#: Keys taken from Sentry's registry (``sentry_conventions.attributes.ATTRIBUTE_NAMES``): our
#: constant -> the registry's. Written out here so that importing the package does not load the
#: registry; tests hold each equal to it.
FROM_SENTRY_CONVENTIONS: dict[str, str] = {
    "SENTRY_OP": "SENTRY_OP",
    "SENTRY_DESCRIPTION": "SENTRY_DESCRIPTION",
    "SENTRY_ENVIRONMENT": "SENTRY_ENVIRONMENT",
    "SENTRY_RELEASE": "SENTRY_RELEASE",
    "USER_ID": "USER_ID",
    "CLIENT_SAMPLE_RATE": "SENTRY_CLIENT_SAMPLE_RATE",
    "SESSION_ID": "SESSION_ID",
    "ERROR_TYPE": "ERROR_TYPE",
    "LINK_TYPE": "SENTRY_LINK_TYPE",
    "OPERATION_NAME": "GEN_AI_OPERATION_NAME",
    "CONVERSATION_ID": "GEN_AI_CONVERSATION_ID",
    "AGENT_NAME": "GEN_AI_AGENT_NAME",
    "PROVIDER_NAME": "GEN_AI_PROVIDER_NAME",
    "TOOL_NAME": "GEN_AI_TOOL_NAME",
    "TOOL_DESCRIPTION": "GEN_AI_TOOL_DESCRIPTION",
    "PROMPT_NAME": "GEN_AI_PROMPT_NAME",
    "REQUEST_MODEL": "GEN_AI_REQUEST_MODEL",
    "REQUEST_TEMPERATURE": "GEN_AI_REQUEST_TEMPERATURE",
    "REQUEST_MAX_TOKENS": "GEN_AI_REQUEST_MAX_TOKENS",
    "REQUEST_TOP_P": "GEN_AI_REQUEST_TOP_P",
    "REQUEST_TOP_K": "GEN_AI_REQUEST_TOP_K",
    "REQUEST_FREQUENCY_PENALTY": "GEN_AI_REQUEST_FREQUENCY_PENALTY",
    "REQUEST_PRESENCE_PENALTY": "GEN_AI_REQUEST_PRESENCE_PENALTY",
    "REQUEST_SEED": "GEN_AI_REQUEST_SEED",
    "REQUEST_STOP_SEQUENCES": "GEN_AI_REQUEST_STOP_SEQUENCES",
    "REQUEST_REASONING_LEVEL": "GEN_AI_REQUEST_REASONING_LEVEL",
    "RESPONSE_MODEL": "GEN_AI_RESPONSE_MODEL",
    "RESPONSE_ID": "GEN_AI_RESPONSE_ID",
    "RESPONSE_FINISH_REASONS": "GEN_AI_RESPONSE_FINISH_REASONS",
    "RESPONSE_STREAMING": "GEN_AI_RESPONSE_STREAMING",
    "RESPONSE_TIME_TO_FIRST_CHUNK": "GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK",
    "USAGE_INPUT_TOKENS": "GEN_AI_USAGE_INPUT_TOKENS",
    "USAGE_OUTPUT_TOKENS": "GEN_AI_USAGE_OUTPUT_TOKENS",
    "USAGE_TOTAL_TOKENS": "GEN_AI_USAGE_TOTAL_TOKENS",
    "USAGE_CACHE_READ": "GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS",
    "USAGE_CACHE_WRITE": "GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS",
    "USAGE_REASONING": "GEN_AI_USAGE_REASONING_OUTPUT_TOKENS",
    "COST_INPUT": "GEN_AI_COST_INPUT_TOKENS",
    "COST_OUTPUT": "GEN_AI_COST_OUTPUT_TOKENS",
    "COST_TOTAL": "GEN_AI_COST_TOTAL_TOKENS",
    "INPUT_MESSAGES": "GEN_AI_INPUT_MESSAGES",
    "OUTPUT_MESSAGES": "GEN_AI_OUTPUT_MESSAGES",
    "SYSTEM_INSTRUCTIONS": "GEN_AI_SYSTEM_INSTRUCTIONS",
    "TOOL_DEFINITIONS": "GEN_AI_TOOL_DEFINITIONS",
    "TOOL_CALL_ARGUMENTS": "GEN_AI_TOOL_CALL_ARGUMENTS",
    "TOOL_CALL_RESULT": "GEN_AI_TOOL_CALL_RESULT",
    "EMBEDDINGS_INPUT": "GEN_AI_EMBEDDINGS_INPUT",
    "SERVICE_NAME": "SERVICE_NAME",
    "SERVICE_VERSION": "SERVICE_VERSION",
    "EXCEPTION_TYPE": "EXCEPTION_TYPE",
    "EXCEPTION_MESSAGE": "EXCEPTION_MESSAGE",
    "EXCEPTION_STACKTRACE": "EXCEPTION_STACKTRACE",
}
#: Spellings Sentry still reads but marks deprecated (looked up in the registry's metadata by the tests).
DEPRECATED_BUT_READ: tuple[str, ...] = (
    "USAGE_CACHE_READ_LEGACY",
    "USAGE_CACHE_WRITE_LEGACY",
    "USAGE_REASONING_LEGACY",
)
#: Keys from OpenTelemetry's stable semantic conventions (``telemetry_attributes``): ours -> theirs.
FROM_OTEL_SEMCONV: dict[str, str] = {
    "TELEMETRY_SDK_NAME": "TELEMETRY_SDK_NAME",
    "TELEMETRY_SDK_VERSION": "TELEMETRY_SDK_VERSION",
    "TELEMETRY_SDK_LANGUAGE": "TELEMETRY_SDK_LANGUAGE",
}
