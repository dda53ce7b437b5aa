"""What the invocation in progress was asked for (`agenthost:agent/invocation`, always granted)."""

from __future__ import annotations

from typing import Optional

from wit_world.imports import invocation as _invocation


def skill() -> Optional[str]:
    """The id of the card skill the caller addressed: the skill behind an MCP tool call, so an
    agent offering several skills as tools knows which one was called. None for bus records and
    A2A messages."""
    return _invocation.skill()
