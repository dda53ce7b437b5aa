"""The pricing example's notification service: an MCP server (Python `mcp` SDK) with one tool,
`send_notification`, which `customer-notify` calls through the host.

Customers who watch a product are its audience (`watchers:<sku>`). Instead of sending e-mail,
each notification is appended as one JSON line to the outbox file (`--outbox PATH`), which is
what the demo checks; without `--outbox` it goes to stderr.

Runs over stdio (how the example host starts it) or, with `--http PORT`, over streamable HTTP at
http://127.0.0.1:PORT/mcp.
"""

import argparse
import itertools
import json
import sys
import uuid
from pathlib import Path

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, Field

server = MCPServer(
    "notifier",
    version="1.0.0",
    instructions="Sends notifications to the customers watching a product.",
)

# Customers watching each product; any other product has none.
WATCHERS = {"sku-1": 3, "sku-2": 5, "sku-3": 1, "sku-5": 2}

outbox: Path | None = None
numbers = itertools.count(1)


class Sent(BaseModel):
    id: str = Field(description="The notification's id")
    audience: str = Field(description="Who it went to")
    recipients: int = Field(description="How many customers received it")


@server.tool()
def send_notification(audience: str, subject: str, body: str) -> Sent:
    """Sends a notification to an audience: `watchers:<sku>` (the customers watching a product)."""
    if not audience.startswith("watchers:") or len(audience) > 300:
        raise ToolError("audience must be watchers:<sku>")
    if not subject.strip() or len(subject) > 200:
        raise ToolError("subject must be 1-200 characters")
    if len(body) > 2000:
        raise ToolError("body must be at most 2000 characters")
    sent = Sent(
        id=f"n-{next(numbers)}-{uuid.uuid4().hex[:8]}",
        audience=audience,
        recipients=WATCHERS.get(audience.removeprefix("watchers:"), 0),
    )
    line = json.dumps({**sent.model_dump(), "subject": subject, "body": body})
    if outbox:
        with outbox.open("a", encoding="utf-8") as f:
            f.write(line + "\n")
    else:
        print(line, file=sys.stderr)
    return sent


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--http", type=int, metavar="PORT", help="serve streamable HTTP on PORT")
    parser.add_argument("--outbox", type=Path, help="append notifications to this file")
    args = parser.parse_args()
    outbox = args.outbox
    if outbox:
        outbox.parent.mkdir(parents=True, exist_ok=True)
    if args.http:
        server.run("streamable-http", host="127.0.0.1", port=args.http)
    else:
        print("notifier MCP server on stdio", file=sys.stderr)
        server.run("stdio")
