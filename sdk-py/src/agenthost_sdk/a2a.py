"""Messages to other agents (`agenthost:agent/a2a`, granted by `capabilities.a2a`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from wit_world.imports import a2a as _a2a
from wit_world.imports import types

from . import checked, message_text


@dataclass
class Answer:
    """A peer's reply: its text (its message's, else its artifacts'), the task state, and the
    raw response."""

    text: str
    state: types.TaskState
    response: Any


def send_text(peer: str, text: str) -> Answer:
    """Sends `text` to `peer` (an agent name, a skill id or an A2A URL)."""
    message = types.Message(
        message_id="",
        role=types.Role.USER,
        parts=[types.Part_Text(text)],
        task_id=None,
        context_id=None,
    )
    response = checked(f"A2A to {peer}", lambda: _a2a.send_message(peer, message))
    if response.message is not None:
        answer = message_text(response.message)
    else:
        answer = "\n".join(
            p.value
            for a in response.artifacts
            for p in a.parts
            if isinstance(p, types.Part_Text)
        )
    return Answer(answer, response.state, response)
