"""Publishing to the bus (`agenthost:agent/bus`, granted by `capabilities.publish`)."""

from __future__ import annotations

import json
from typing import Any, Mapping, Optional

from wit_world.imports import bus as _bus
from wit_world.imports import types

from . import checked

Receipt = _bus.Receipt


def _bytes(value: Any) -> bytes:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    return json.dumps(value).encode("utf-8")


def _outgoing(
    topic: str, payload: Any, key: Any = None, headers: Optional[Mapping[str, str]] = None
) -> _bus.Outgoing:
    return _bus.Outgoing(
        topic=topic,
        key=None if key is None else _bytes(key),
        payload=_bytes(payload),
        headers=[types.Header(key=k, value=v.encode("utf-8")) for k, v in (headers or {}).items()],
    )


def publish(
    topic: str, payload: Any, key: Any = None, headers: Optional[Mapping[str, str]] = None
) -> Receipt:
    """Publishes one record and waits for the bus to accept it. `payload`: bytes as they are, a
    str as UTF-8, anything else as JSON. A refusal raises `reject`, an outage `retry`."""
    record = _outgoing(topic, payload, key, headers)
    return checked(f"publish to {topic}", lambda: _bus.publish(record))


def send(
    topic: str, payload: Any, key: Any = None, headers: Optional[Mapping[str, str]] = None
) -> None:
    """Sends one record without waiting: the event is finished only once the bus accepted it
    (the host waits), so this is as safe as `publish` and faster."""
    record = _outgoing(topic, payload, key, headers)
    checked(f"send to {topic}", lambda: _bus.send(record))


def forward(topic: str, event: types.Event) -> Receipt:
    """Republishes an event unchanged (payload, key and headers) to `topic`."""
    record = _bus.Outgoing(
        topic=topic, key=event.key, payload=event.payload, headers=event.headers
    )
    return checked(f"publish to {topic}", lambda: _bus.publish(record))
