"""Content shapes Sentry's conventions define, built from what the frameworks hand us.

Framework adapters call these to turn their payloads into the shapes the ``gen_ai.*`` content
attributes take; nothing here knows which framework a value came from.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def tool_definitions(tools: Any) -> list[dict[str, Any]] | Any:
    """Tool definitions in the conventions' flat shape ``{"type", "name", "description", "parameters"}``.

    Accepts OpenAI's nested ``{"type": "function", "function": {...}}`` form (what LangChain and
    LlamaIndex pass to chat models), the flat form, Anthropic's ``input_schema`` form, and
    objects with a ``name``; anything else is kept as it is.

    >>> tool_definitions([{"type": "function", "function": {"name": "search", "parameters": {}}}])
    [{'type': 'function', 'name': 'search', 'parameters': {}}]
    """
    if not isinstance(tools, (list, tuple)):
        return tools
    return [_tool_definition(tool) for tool in tools]


def _tool_definition(tool: Any) -> Any:
    if not isinstance(tool, Mapping):
        name = getattr(tool, "name", None)
        if not isinstance(name, str):
            return tool
        tool = {"name": name, "description": getattr(tool, "description", None)}
    function = tool.get("function")
    source = function if isinstance(function, Mapping) else tool
    flat: dict[str, Any] = {"type": tool.get("type") or "function"}
    for key in ("name", "description"):
        if source.get(key) is not None:
            flat[key] = source[key]
    parameters = source.get("parameters", source.get("input_schema"))
    if parameters is not None:
        flat["parameters"] = parameters
    return flat if "name" in flat else dict(tool)
