"""An MCP client on the official Python SDK, for the tests of the host's MCP server.

usage: mcp_tool_client.py URL ERA OPS_JSON [KEY=VALUE header ...]

ERA is `session` (the 2025-11-25 handshake: `initialize`, `Mcp-Session-Id`) or `stateless`
(2026-07-28: `server/discover`, per-request `_meta`). OPS_JSON is a list of operations, each
answered by one JSON line on stdout:

- {"op": "list"} -> {"protocol": ..., "tools": [{"name", "title", "description", "inputSchema"}]}
  (every page, following `nextCursor`)
- {"op": "call", "name": ..., "arguments": {...}} -> {"is_error", "content", "structured", "meta"}
  or {"error": {"code", "message"}}
"""

import asyncio
import json
import sys

import httpx2
from mcp import types
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError


async def run(url: str, era: str, ops: list, headers: dict) -> None:
    async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
        async with streamable_http_client(url, http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                if era == "session":
                    result = await session.initialize()
                    protocol = result.protocol_version
                else:
                    await session.discover()
                    protocol = session.protocol_version
                for op in ops:
                    print(json.dumps(await one(session, protocol, op)), flush=True)


async def one(session: ClientSession, protocol: str, op: dict) -> dict:
    try:
        if op["op"] == "list":
            tools, cursor = [], None
            while True:
                params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
                page = await session.list_tools(params=params)
                tools += [
                    {
                        "name": t.name,
                        "title": t.title,
                        "description": t.description,
                        "inputSchema": t.input_schema,
                    }
                    for t in page.tools
                ]
                cursor = page.next_cursor
                if not cursor:
                    return {"protocol": protocol, "tools": tools}
        result = await session.call_tool(op["name"], op.get("arguments"))
        return {
            "is_error": bool(result.is_error),
            "content": [c.model_dump(mode="json", by_alias=True) for c in result.content],
            "structured": result.structured_content,
            "meta": result.meta,
        }
    except MCPError as e:
        return {"error": {"code": e.error.code, "message": e.error.message}}


def main() -> None:
    url, era, ops = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    headers = dict(h.split("=", 1) for h in sys.argv[4:])
    asyncio.run(run(url, era, ops, headers))


if __name__ == "__main__":
    main()
