"""The agent's key-value state (`agenthost:agent/state`, granted by `capabilities.state`)."""

from __future__ import annotations

import json
from typing import Any, Optional

from wit_world.imports import state as _state

from . import checked, reject


def get(key: str) -> Optional[bytes]:
    """The bytes stored under `key`, or None."""
    value = checked(f"state get {key}", lambda: _state.get(key))
    return None if value is None else bytes(value)


def get_json(key: str) -> Any:
    """The JSON value stored under `key`, or None; a stored value that is not JSON rejects."""
    value = get(key)
    if value is None:
        return None
    try:
        return json.loads(value.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise reject(f"state {key} does not hold JSON: {e}") from None


def set(key: str, value: Any) -> None:  # noqa: A001 - the WIT's name
    """Stores `value` under `key`: bytes as they are, a str as UTF-8, anything else as JSON."""
    if isinstance(value, (bytes, bytearray)):
        data = bytes(value)
    elif isinstance(value, str):
        data = value.encode("utf-8")
    else:
        data = json.dumps(value).encode("utf-8")
    checked(f"state set {key}", lambda: _state.set(key, data))


def delete(key: str) -> None:
    """Deletes `key` (nothing happens when it is absent)."""
    checked(f"state delete {key}", lambda: _state.delete(key))


def keys(prefix: str = "") -> list[str]:
    """The keys starting with `prefix`, in byte order."""
    return checked(f"state list {prefix}", lambda: _state.list_keys(prefix))
