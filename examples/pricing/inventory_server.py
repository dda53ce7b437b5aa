"""The pricing example's inventory service: an MCP server (Python `mcp` SDK) with one tool,
`get_inventory`, which `price-analysis` calls through the host before it recommends a price.

Runs over stdio (how the example host starts it) or, with `--http PORT`, over streamable
HTTP at http://127.0.0.1:PORT/mcp.

Stock levels are a fixed table; an unknown product has none.
"""

import argparse
import sys

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, Field

server = MCPServer(
    "inventory",
    version="1.0.0",
    instructions="Stock levels per product (SKU).",
)

STOCK = {
    "sku-1": {"on_hand": 42, "incoming": 0, "warehouse": "ams-1"},
    "sku-2": {"on_hand": 0, "incoming": 120, "warehouse": "ams-1"},
    "sku-3": {"on_hand": 7, "incoming": 0, "warehouse": "fra-2"},
    "sku-5": {"on_hand": 3, "incoming": 10, "warehouse": "fra-2"},
}


class Inventory(BaseModel):
    product: str = Field(description="The product id (SKU)")
    on_hand: int = Field(description="Units in stock now")
    incoming: int = Field(description="Units on order")
    warehouse: str | None = Field(default=None, description="Where the stock is")


@server.tool()
def get_inventory(product: str) -> Inventory:
    """Stock on hand and on order for one product."""
    if not product or len(product) > 256:
        raise ToolError("product must be 1-256 characters")
    row = STOCK.get(product, {"on_hand": 0, "incoming": 0, "warehouse": None})
    return Inventory(product=product, **row)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--http", type=int, metavar="PORT", help="serve streamable HTTP on PORT")
    args = parser.parse_args()
    if args.http:
        server.run("streamable-http", host="127.0.0.1", port=args.http)
    else:
        print("inventory MCP server on stdio", file=sys.stderr)
        server.run("stdio")
