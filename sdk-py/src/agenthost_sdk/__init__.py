"""Write agenthost agents in Python.

An agent is a module `agent.py` with a class `Agent` implementing the WIT export
`agenthost:agent/agent@0.1.0` (`card`, `on_event`, `on_message`), built into a WebAssembly
component by componentize-py (`agenthost build` does it). This package is bundled with the agent
and puts a small layer on the generated bindings:

- failures a handler raises: `raise reject("why")` (dead-letter now) or `raise retry("why")`
  (deliver again after backoff); `@handled` turns any other exception into a `reject` naming
  it, instead of a trap;
- the event's payload as text or JSON (`event_json` tells "not JSON" from "JSON that does not
  match"), its key and headers; a message's text; replies, cards and skills;
- one module per import — `agenthost_sdk.bus`, `.state`, `.mcp`, `.a2a`, `.config`, `.log` —
  whose calls raise `reject` for a refusal by policy and `retry` for an outage, naming the call.
  Import only what the manifest grants: a world has only the imports it is granted, and
  importing a module of an interface it lacks fails the build, naming it.

The component is built with `--stub-wasi`: `print()`, `time`, `random` and files trap; log
through `agenthost_sdk.log`. The WIT contract is packaged beside this file (`agent.wit`).
"""

from __future__ import annotations

import functools
import json
from typing import Any, Callable, Iterable, Optional, TypeVar

from componentize_py_types import Err
from wit_world.imports import types

__all__ = [
    "Err",
    "card",
    "checked",
    "event_header",
    "event_json",
    "event_key",
    "event_text",
    "failure_of",
    "handled",
    "message_data",
    "message_text",
    "position",
    "reject",
    "retry",
    "skill",
    "text_reply",
    "types",
]

T = TypeVar("T")


def reject(reason: object) -> Err:
    """A permanent failure to raise: the record is dead-lettered now, the A2A task fails."""
    return Err(types.Failure_Reject(str(reason)))


def retry(reason: object) -> Err:
    """A transient failure to raise: the record is delivered again after backoff."""
    return Err(types.Failure_Retry(str(reason)))


def failure_of(error: Err, what: str) -> Err:
    """An import's `Err` as the handler's failure: a refusal by policy (`denied`) will not change
    by retrying, so it rejects; an outage (`failed`) may, so it retries. `what` names the call."""
    value = error.value
    if isinstance(value, types.Error_Denied):
        return reject(f"{what} denied: {value.value}")
    if isinstance(value, types.Error_Failed):
        return retry(f"{what} failed: {value.value}")
    return error


def checked(what: str, call: Callable[[], T]) -> T:
    """`call()`, with an import's `Err` turned into the failure `failure_of` gives."""
    try:
        return call()
    except Err as e:
        raise failure_of(e, what) from None


def handled(handler: Callable[..., T]) -> Callable[..., T]:
    """Decorates a handler so that an unexpected exception becomes a `reject` naming it: an
    exception escaping a handler would trap the instance, and the reason would be lost."""

    @functools.wraps(handler)
    def wrapper(*args: Any) -> T:
        try:
            return handler(*args)
        except Err:
            raise
        except Exception as e:  # noqa: BLE001 - anything else is a bug in the agent
            raise reject(f"{type(e).__name__}: {e}") from None

    return wrapper


def position(event: types.Event) -> str:
    """Where an event came from, as the host's logs and audit write it."""
    return f"{event.topic}[{event.partition}]@{event.offset}"


def event_text(event: types.Event) -> str:
    """The payload as text; a payload that is not UTF-8 rejects the event, naming it."""
    try:
        return bytes(event.payload).decode("utf-8")
    except UnicodeDecodeError as e:
        raise reject(f"{position(event)}: payload is not UTF-8 text: {e}") from None


def event_json(event: types.Event, check: Optional[Callable[[Any], Optional[str]]] = None) -> Any:
    """The payload parsed as JSON. A payload that is not JSON rejects the event saying so;
    `check(value)`, when given, returns an error text for JSON of the wrong shape (or None),
    which rejects the event as "JSON that does not match"."""
    text = event_text(event)
    try:
        value = json.loads(text)
    except ValueError as e:
        raise reject(f"{position(event)}: payload is not JSON: {e}") from None
    problem = check(value) if check else None
    if problem:
        raise reject(f"{position(event)}: payload does not match: {problem}")
    return value


def event_key(event: types.Event) -> Optional[str]:
    """The key as text, or None when there is none (or it is not UTF-8)."""
    if event.key is None:
        return None
    try:
        return bytes(event.key).decode("utf-8")
    except UnicodeDecodeError:
        return None


def event_header(event: types.Event, name: str) -> Optional[str]:
    """The value of header `name` as text, or None."""
    for header in event.headers:
        if header.key == name:
            try:
                return bytes(header.value).decode("utf-8")
            except UnicodeDecodeError:
                return None
    return None


def message_text(message: types.Message) -> str:
    """The text parts of an A2A message, joined by newlines."""
    return "\n".join(p.value for p in message.parts if isinstance(p, types.Part_Text))


def message_data(message: types.Message) -> Any:
    """The first data part of a message, parsed, or None; a part that is not JSON rejects."""
    for part in message.parts:
        if isinstance(part, types.Part_Data):
            try:
                return json.loads(part.value)
            except ValueError as e:
                raise reject(f"the message's data part is not JSON: {e}") from None
    return None


def text_reply(text: str, data: Any = None) -> types.Reply:
    """A completed reply whose message is `text` (and a data part for `data`, when given). Its
    message id is left empty: the host gives it a unique one."""
    parts: list[Any] = [types.Part_Text(str(text))]
    if data is not None:
        parts.append(types.Part_Data(json.dumps(data)))
    message = types.Message(
        message_id="", role=types.Role.AGENT, parts=parts, task_id=None, context_id=None
    )
    return types.Reply(message=message, artifacts=[], state=types.TaskState.COMPLETED)


#: The tag prefix that carries a skill's input schema: the WIT ``skill`` record (contract
#: 0.1.0) has no field for it, and the host takes this tag out of the card it shows.
INPUT_SCHEMA_TAG = "agenthost:input-schema="


def skill(
    id: str,
    name: str,
    description: str = "",
    tags: Iterable[str] = (),
    examples: Iterable[str] = (),
    input_schema: dict[str, Any] | None = None,
) -> types.Skill:
    """A skill of a card.

    ``input_schema`` (a JSON Schema with ``"type": "object"``) declares what the skill takes as
    an MCP tool: the host refuses arguments that fail it, and the agent receives them as one
    data part (``message_data``). Without one, the tool takes ``{"text": ...}`` and the agent a
    text part.
    """
    all_tags = [t for t in tags if not t.startswith(INPUT_SCHEMA_TAG)]
    if input_schema is not None:
        if not isinstance(input_schema, dict) or input_schema.get("type") != "object":
            raise TypeError(f'skill {id}: input_schema must be a JSON Schema with "type": "object"')
        all_tags.append(INPUT_SCHEMA_TAG + json.dumps(input_schema, separators=(",", ":")))
    return types.Skill(
        id=id, name=name, description=description, tags=all_tags, examples=list(examples)
    )


def card(
    name: str, version: str, description: str = "", skills: Iterable[types.Skill] = ()
) -> types.Card:
    """An agent card."""
    return types.Card(name=name, description=description, version=version, skills=list(skills))
