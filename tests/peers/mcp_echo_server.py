"""The baseline of the `mcp_serve` benchmark: an `echo` tool on the official Python SDK's
high-level server (`MCPServer`, formerly FastMCP), over streamable HTTP on 127.0.0.1.

usage: mcp_echo_server.py PORT
"""

import sys

from mcp.server.mcpserver import MCPServer

server = MCPServer("echo", version="1.0.0", log_level="WARNING")


@server.tool()
def echo(text: str) -> str:
    """Answers with the text it was sent."""
    return text


if __name__ == "__main__":
    server.run(transport="streamable-http", host="127.0.0.1", port=int(sys.argv[1]))
