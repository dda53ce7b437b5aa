"""MCP tools (`agenthost:agent/mcp`, granted by `capabilities.mcp`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Optional

from wit_world.imports import mcp as _mcp

from . import checked


@dataclass
class ToolResult:
    """A tool's answer: its text items joined, its structured content parsed (or None), whether
    the tool says it failed, and the raw content."""

    text: str
    structured: Any
    is_error: bool
    content: list


def call_tool(server: str, tool: str, arguments: Optional[dict] = None) -> ToolResult:
    """Calls `tool` of `server` with `arguments` (sent as JSON). A refusal raises `reject`, an
    outage `retry`; what a tool that ran but failed means is the agent's to decide."""
    args = json.dumps(arguments or {})
    result = checked(f"MCP {server}/{tool}", lambda: _mcp.call_tool(server, tool, args))
    text = "\n".join(c.value for c in result.content if isinstance(c, _mcp.Content_Text))
    structured = None
    if result.structured_content is not None:
        try:
            structured = json.loads(result.structured_content)
        except ValueError:
            structured = None
    return ToolResult(text, structured, result.is_error, list(result.content))


def list_tools(server: str) -> list:
    """The granted tools of `server`."""
    return checked(f"MCP list {server}", lambda: _mcp.list_tools(server))
