"""The pricing example's scraping service: an MCP server (Python `mcp` SDK) with one tool,
`scrape_price`, which `price-collector` calls through the host.

It reads product pages — our shop's catalogue and a competitor's listing — and extracts the
product's price from the HTML. The pages are saved copies in `shops/` (the example runs offline,
over loopback only); `--pages DIR` points it at other copies.

Runs over stdio (how the example host starts it) or, with `--http PORT`, over streamable HTTP at
http://127.0.0.1:PORT/mcp.
"""

import argparse
import sys
from html.parser import HTMLParser
from pathlib import Path

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, Field

server = MCPServer(
    "shop-scraper",
    version="1.0.0",
    instructions="Scrapes our shop's and competitors' product pages for prices.",
)

# Which saved page stands for which site.
OUR_SHOP = ("our-shop.html", "https://shop.example/catalogue")
COMPETITORS = [("pricewatch.html", "https://pricewatch.example/coffee", "pricewatch")]

pages = Path(__file__).resolve().parent / "shops"


class Prices(HTMLParser):
    """Collects `{sku: (price, currency)}` from elements marked with `data-sku` that contain an
    element of class `price` (our catalogue) or `amount` (the competitor's table)."""

    def __init__(self, price_class: str):
        super().__init__()
        self.price_class = price_class
        self.sku: str | None = None
        self.currency: str | None = None
        self.in_price = False
        self.found: dict[str, tuple[float, str | None]] = {}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "data-sku" in attrs:
            self.sku = attrs["data-sku"]
        if self.price_class in (attrs.get("class") or "").split() and self.sku:
            self.in_price = True
            self.currency = attrs.get("data-currency")

    def handle_data(self, data):
        if self.in_price and data.strip():
            self.found[self.sku] = (float(data.strip()), self.currency)
            self.in_price = False


def scrape(page: str, price_class: str) -> dict[str, tuple[float, str | None]]:
    parser = Prices(price_class)
    parser.feed((pages / page).read_text(encoding="utf-8"))
    return parser.found


class Listing(BaseModel):
    product: str = Field(description="The product id (SKU)")
    price: float = Field(description="Our shop's listed price")
    competitor_price: float | None = Field(description="The lowest competitor price, if listed")
    competitor: str | None = Field(description="Which competitor has that price")
    currency: str = Field(description="ISO 4217 currency of both prices")
    url: str = Field(description="The page our price was read from")


@server.tool()
def scrape_price(product: str) -> Listing:
    """Our listed price for a product and the lowest competitor price, read from the shops'
    product pages."""
    if not product or len(product) > 256:
        raise ToolError("product must be 1-256 characters")
    ours = scrape(OUR_SHOP[0], "price")
    if product not in ours:
        raise ToolError(f"no listing for {product} on {OUR_SHOP[1]}")
    price, currency = ours[product]
    offers = []
    for page, url, name in COMPETITORS:
        found = scrape(page, "amount").get(product)
        if found:
            offers.append((found[0], name))
    best = min(offers, default=None)
    return Listing(
        product=product,
        price=price,
        competitor_price=best[0] if best else None,
        competitor=best[1] if best else None,
        currency=currency or "EUR",
        url=f"{OUR_SHOP[1]}#{product}",
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--http", type=int, metavar="PORT", help="serve streamable HTTP on PORT")
    parser.add_argument("--pages", type=Path, help="the directory of saved pages (default: shops/)")
    args = parser.parse_args()
    if args.pages:
        pages = args.pages
    if args.http:
        server.run("streamable-http", host="127.0.0.1", port=args.http)
    else:
        print("shop-scraper MCP server on stdio", file=sys.stderr)
        server.run("stdio")
