"""price-collector: looks up a product's price and its competitor's price through the
`scrape_price` tool of an MCP server, and publishes what it found.

Handles `ecommerce.price-check-requested.v1` records (`{"product": "sku-1"}`) and publishes
`{"product", "price", "competitor_price", "currency", "source"}` to `ecommerce.price-changed.v1`
(config `out`), keyed by product. An A2A message whose text is a product id gets the prices in
the reply, without publishing.

Conventions of componentize-py (see wit/world.wit for the imports):
- The export `agent` is implemented by a class named `Agent` in this module (`agent.py`,
  built with `componentize-py ... componentize agent`).
- WIT names are snake_case; a variant case is a class (`types.Failure_Reject(reason)`), an enum
  a Python `Enum`, an option `None` or the value, `list<u8>` `bytes`.
- A `result` export returns its ok value or raises `Err(value)`:
  `raise Err(types.Failure_Reject("why"))`.
- A `result` import returns its ok value or raises `Err`, whose `.value` is a
  `types.Error_Denied` or `types.Error_Failed`.
- The component is built with `--stub-wasi`: it imports nothing but the interfaces of its world.
  `print()`, `time`, `random` and files trap; log through the `log` import. Any exception that
  escapes a handler would trap too, so `_handled` turns it into a `reject` naming it.
"""

import json
from typing import Any, Callable, Optional, TypeVar

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import bus, config, log, mcp, types

VERSION = "1.0.0"
TOOL = "scrape_price"

T = TypeVar("T")


def _handled(handler: Callable[..., T]) -> Callable[..., T]:
    """Turns an unexpected exception into a `reject` that names it instead of a trap."""

    def wrapper(*args: Any) -> T:
        try:
            return handler(*args)
        except Err:
            raise
        except Exception as e:  # noqa: BLE001 - anything else is a bug in this agent
            raise Err(types.Failure_Reject(f"price-collector bug: {type(e).__name__}: {e}"))

    return wrapper


class Agent(exports.Agent):
    def card(self) -> types.Card:
        return types.Card(
            name="price-collector",
            description="Collects our price and the competitor's price of a product from the shop scraper",
            version=VERSION,
            skills=[
                types.Skill(
                    id="collect-price",
                    name="Collect prices",
                    description="Looks up our price and the competitor's for a product id; "
                    "from ecommerce.price-check-requested.v1 events it publishes "
                    "ecommerce.price-changed.v1",
                    tags=["pricing", "ecommerce"],
                    examples=["sku-1"],
                )
            ],
        )

    @_handled
    def on_event(self, event: types.Event) -> None:
        where = f"{event.topic}[{event.partition}]@{event.offset}"
        product = _requested_product(event.payload, where)
        found = _scrape(product)
        message: dict[str, Any] = {
            "product": product,
            "price": found["price"],
            "currency": found["currency"],
            "source": found["url"],
        }
        if found.get("competitor_price") is not None:
            message["competitor_price"] = found["competitor_price"]
        out = config.get("out") or "ecommerce.price-changed.v1"
        record = bus.Outgoing(
            topic=out,
            key=product.encode(),
            payload=json.dumps(message).encode(),
            headers=[types.Header(key="content-type", value=b"application/json")],
        )
        try:
            bus.publish(record)
        except Err as e:
            raise Err(_import_failure(e.value, f"publishing to {out}"))
        log.log(log.Level.INFO, _summary(product, found))

    @_handled
    def on_message(self, message: types.Message) -> types.Reply:
        text = " ".join(
            p.value for p in message.parts if isinstance(p, types.Part_Text)
        ).strip()
        if not text:
            raise Err(types.Failure_Reject("send a product id as text, e.g. sku-1"))
        found = _scrape(text)
        reply = types.Message(
            message_id=f"price-collector-{message.message_id}",
            role=types.Role.AGENT,
            parts=[types.Part_Text(_summary(text, found))],
            task_id=message.task_id,
            context_id=message.context_id,
        )
        return types.Reply(message=reply, artifacts=[], state=types.TaskState.COMPLETED)


def _requested_product(payload: bytes, where: str) -> str:
    """The product a check request names, or a `reject` saying what is wrong with it."""
    try:
        request = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise Err(types.Failure_Reject(f"{where}: payload is not JSON: {e}"))
    if not isinstance(request, dict):
        raise Err(types.Failure_Reject(f"{where}: payload must be a JSON object"))
    product = request.get("product")
    if not isinstance(product, str) or not product:
        raise Err(
            types.Failure_Reject(f'{where}: "product" is missing or not a non-empty string')
        )
    return product


def _scrape(product: str) -> dict[str, Any]:
    """The scraper's answer for `product`; a missing listing or a malformed answer is a
    `reject` (asking again will not make a listing appear)."""
    server = config.get("scraper") or "shop-scraper"
    try:
        result = mcp.call_tool(server, TOOL, json.dumps({"product": product}))
    except Err as e:
        raise Err(_import_failure(e.value, f"{TOOL} on {server}"))
    text = "\n".join(c.value for c in result.content if isinstance(c, mcp.Content_Text))
    if result.is_error:
        raise Err(types.Failure_Reject(f"{TOOL} on {server}: {text or 'no reason given'}"))
    found = _json_object(result.structured_content) or _json_object(text)
    if found is None:
        raise Err(types.Failure_Reject(f"{TOOL} on {server} answered no JSON object: {text!r}"))
    for field, kinds in (("price", (int, float)), ("currency", str), ("url", str)):
        if not isinstance(found.get(field), kinds) or isinstance(found.get(field), bool):
            raise Err(
                types.Failure_Reject(f'{TOOL} on {server}: answer has no valid "{field}": {found}')
            )
    return found


def _json_object(text: Optional[str]) -> Optional[dict[str, Any]]:
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _summary(product: str, found: dict[str, Any]) -> str:
    competitor = found.get("competitor_price")
    return (
        f"{product}: ours {found['price']} {found['currency']}, "
        f"competitor {'none' if competitor is None else competitor}"
    )


def _import_failure(error: types.Error, what: str) -> types.Failure:
    """A policy refusal will not change by retrying; an outage may."""
    if isinstance(error, types.Error_Denied):
        return types.Failure_Reject(f"{what} denied: {error.value}")
    return types.Failure_Retry(f"{what} failed: {error.value}")
