"""Asks price-analysis for a product's last known price the way any MCP client would: the host
serves the skills of agents whose manifest says `[mcp] expose = true` as MCP tools.

usage: python3 ask_over_mcp.py [URL] [PRODUCT]    (default http://127.0.0.1:8080/mcp sku-1)
"""

import asyncio
import json
import sys

from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client


async def main(url: str, product: str) -> None:
    async with streamable_http_client(url) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            listed = await session.list_tools()
            for tool in listed.tools:
                print(f"  tool {tool.name}: {tool.description}")
            result = await session.call_tool("price-analysis.last-price", {"product": product})
            text = " ".join(c.text for c in result.content if c.type == "text")
            print(f"  price-analysis.last-price {json.dumps({'product': product})} -> {text}")
            if result.is_error:
                sys.exit(1)


if __name__ == "__main__":
    asyncio.run(
        main(
            sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8080/mcp",
            sys.argv[2] if len(sys.argv) > 2 else "sku-1",
        )
    )
