"""The agent's `capabilities.config` values (`agenthost:agent/config`, always granted)."""

from __future__ import annotations

from typing import Optional

from wit_world.imports import config as _config

from . import reject


def get(key: str, default: Optional[str] = None) -> Optional[str]:
    """The value of `key`, or `default`."""
    value = _config.get(key)
    return default if value is None else value


def require(key: str) -> str:
    """The value of `key`; its absence rejects, naming the key and where to set it."""
    value = _config.get(key)
    if value is None:
        raise reject(f'config "{key}" is not set: add it to capabilities.config in the manifest')
    return value


def all() -> dict[str, str]:  # noqa: A001 - reads as config.all()
    """Every value."""
    return dict(_config.get_all())
