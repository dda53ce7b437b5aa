"""The host's log (`agenthost:agent/log`, always granted), tagged with the agent and the
correlation id of what is being handled. `print()` traps in the component: log here."""

from wit_world.imports import log as _log


def trace(message: object) -> None:
    _log.log(_log.Level.TRACE, str(message))


def debug(message: object) -> None:
    _log.log(_log.Level.DEBUG, str(message))


def info(message: object) -> None:
    _log.log(_log.Level.INFO, str(message))


def warn(message: object) -> None:
    _log.log(_log.Level.WARN, str(message))


def error(message: object) -> None:
    _log.log(_log.Level.ERROR, str(message))
