"""An MCP server (Python `mcp` SDK, stdio) that lets the integration tests observe what the host
does: which correlation id it sends, whether it cancels a call, and whether a changed tool list
reaches agents. Events are appended, one JSON object per line, to the file in $PROBE_LOG.

Tools:
- `whoami()` -> the `_meta` the request carried.
- `sleep(seconds)` -> sleeps; a cancelled call is logged as {"event": "cancelled"}.
- `add_tool(name)` -> registers a new tool `name` (echoing its `text` argument) and announces
  the change.
- `fail(message)` -> a tool error (`isError: true`).
- `environment()` -> the names of the environment variables the server was started with.
"""

import asyncio
import json
import os
import sys

from mcp.server.mcpserver import Context, MCPServer

server = MCPServer("probe", version="1.0.0")


def log(event: dict) -> None:
    path = os.environ.get("PROBE_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(event) + "\n")


def request_meta(ctx: Context) -> dict:
    meta = ctx.request_context.meta
    if meta is None:
        return {}
    if hasattr(meta, "model_dump"):
        return meta.model_dump(by_alias=True, exclude_none=True)
    return dict(meta)


@server.tool()
def environment() -> str:
    """The names of this process's environment variables (not their values), comma-separated."""
    return ",".join(sorted(os.environ))


@server.tool()
def whoami(ctx: Context) -> dict:
    """The `_meta` of this request."""
    meta = request_meta(ctx)
    log({"event": "whoami", "meta": meta})
    return {"meta": meta}


@server.tool()
async def sleep(seconds: float, ctx: Context) -> str:
    """Sleeps, and records whether the call was cancelled."""
    log({"event": "sleep", "meta": request_meta(ctx)})
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        log({"event": "cancelled"})
        raise
    log({"event": "slept"})
    return f"slept {seconds}s"


@server.tool()
async def add_tool(name: str, ctx: Context) -> str:
    """Registers a new tool and tells subscribed clients the list changed."""

    def added(text: str) -> str:
        return f"{name}: {text}"

    server.add_tool(added, name=name, description=f"added at run time as {name}")
    await ctx.notify_tools_changed()
    try:
        await ctx.request_context.session.send_tool_list_changed()
    except Exception as error:  # a modern session has no unsolicited notifications
        print(f"legacy list_changed not sent: {error}", file=sys.stderr)
    log({"event": "added", "name": name})
    return f"added {name}"


@server.tool()
def fail(message: str) -> str:
    """Always fails with `message` (a tool error, not a protocol error)."""
    raise ValueError(message)


if __name__ == "__main__":
    print("probe MCP server starting", file=sys.stderr)
    server.run("stdio")
