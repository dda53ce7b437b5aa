//! `price-analysis`: watches price changes and publishes price-adjustment decisions.
//!
//! # Input: `ecommerce.price-changed.v1`
//!
//! A JSON object; unknown fields are ignored:
//!
//! ```json
//! {"product": "sku-1", "price": 19.99, "competitor_price": 17.5, "currency": "EUR"}
//! ```
//!
//! | field              | type             | meaning                                         |
//! |--------------------|------------------|-------------------------------------------------|
//! | `product`          | string, required | product id (SKU): non-empty, at most 256 bytes, no control characters |
//! | `price`            | number, required | our new price, positive                         |
//! | `competitor_price` | number, optional | a competitor's price for the product, positive  |
//! | `currency`         | string, optional | copied to the decision                          |
//!
//! A payload that is not such an object (malformed JSON, a missing or mistyped field, a
//! non-positive price) is rejected — dead-lettered at once — with a reason naming the topic,
//! partition, offset and what was wrong.
//!
//! # Decision
//!
//! The new price is compared against a reference: the event's `competitor_price` when present
//! (what the market charges matters more than our own history), else our last known price for
//! the product (kept in state). `change = (price - reference) / reference`. When
//! `|change|` exceeds `threshold`:
//!
//! - against a competitor, more than `threshold` above → `"lower"`, below → `"raise"`, with
//!   `suggested_price` = the competitor's price;
//! - against our last price → `"review"` (a large move with nothing to judge it by; a human
//!   should look), `suggested_price` = `null`.
//!
//! The first price seen for a product, without a competitor price, decides nothing. A change of
//! exactly `threshold` does not exceed it.
//!
//! Before publishing, the agent asks the inventory service for the product's stock through the
//! host's MCP client (tool `get_inventory` on the server named by config `inventory`): the
//! stock goes into the decision, and a `lower` for a product with nothing on hand becomes
//! `"hold"` with no suggested price (a cheaper price sells nothing). A tool error or an
//! unavailable server retries the event; a call the manifest does not grant rejects it.
//!
//! # Output: `action.price-adjustment.v1`
//!
//! Published to the topic in config `out`, keyed by the product, with a
//! `content-type: application/json` header:
//!
//! ```json
//! {"product": "sku-1", "old_price": 19.99, "new_price": 21.5, "basis": "competitor",
//!  "reference_price": 17.5, "change": 0.2286, "threshold": 0.05, "recommendation": "lower",
//!  "suggested_price": 17.5, "currency": "EUR",
//!  "source": {"topic": "ecommerce.price-changed.v1", "partition": 0, "offset": 42,
//!             "timestamp_ms": 1767225600000}}
//! ```
//!
//! `old_price` is our last known price (`null` for the first one), `basis` is `"competitor"` or
//! `"previous"`, `recommendation` is `"lower"`, `"raise"`, `"review"` or `"hold"`, and
//! `inventory` is `{"on_hand": …, "incoming": …}` from the inventory service.
//!
//! # State
//!
//! `last-price/<product>` → `{"price": 19.99, "timestamp_ms": …}`, written after the decision is
//! published (so a failed publish is retried with the old price still in place; a replay may
//! publish a decision twice — delivery is at-least-once). An event older than the stored price
//! (by bus timestamp) is skipped, so a late record never overwrites a newer price. A stored value
//! that does not parse is logged and replaced.
//!
//! # A2A
//!
//! A message whose text is a product id, or whose data part is `{"product": "sku-1"}` (what the
//! `last-price` skill's input schema asks of an MCP client), is answered with its last known
//! price: a text part, and a data part `{"product": …, "price": … or null}`.
//!
//! # Config
//!
//! - `threshold` — a fraction, default `0.05`; not a number or negative → every event is
//!   rejected with a reason naming the key.
//! - `out` — the decision topic, default `action.price-adjustment.v1`.
//! - `inventory` — the MCP server with the `get_inventory` tool, default `inventory`.
//! - `orders` — the agent a decision is handed to over A2A, default `order-update`.
//!
//! After publishing a decision, the agent sends it (a data part) to the order-update agent and
//! waits for its answer: `rejected` rejects the event, any other unfinished state retries it.
//!
//! Imports: `bus`, `state`, `config`, `log`, `mcp`, `a2a`.

pub mod analysis;

use agenthost_sdk::{
    Agent, Card, Event, Failure, Message, Part, Reply, Role, Skill, TaskState, a2a, bus, config,
    info, mcp, state, warn,
};
use analysis::{Decision, LastPrice, PriceChanged, Source, Stock};

struct PriceAnalysis;

impl Agent for PriceAnalysis {
    fn card() -> Card {
        Card::new("price-analysis", env!("CARGO_PKG_VERSION"))
            .description(
                "Compares price changes with competitor and past prices and recommends adjustments",
            )
            .skill(
                Skill::new("price-analysis", "Price analysis")
                    .description("Publishes a price-adjustment decision when a price drifts past the threshold")
                    .tag("pricing")
                    .tag("ecommerce"),
            )
            .skill(
                Skill::new("last-price", "Last known price")
                    .description("Answers a product id with its last known price")
                    .tag("pricing")
                    .example("sku-1")
                    // As an MCP tool (`price-analysis.last-price`) it takes `{"product": …}`.
                    .input_schema(serde_json::json!({
                        "type": "object",
                        "properties": {
                            "product": { "type": "string", "description": "A product id, e.g. sku-1" }
                        },
                        "required": ["product"]
                    })),
            )
    }

    fn on_event(event: Event) -> Result<(), Failure> {
        let input: PriceChanged = event.json()?;
        input.validate().map_err(|what| {
            Failure::reject(format!(
                "invalid price-changed event at {}: {what}",
                event.position()
            ))
        })?;
        let threshold = config::parse::<f64>("threshold")?
            .map(analysis::check_threshold)
            .unwrap_or(Ok(analysis::DEFAULT_THRESHOLD))
            .map_err(Failure::reject)?;

        let key = analysis::state_key(&input.product);
        let last = load_last_price(&key)?;
        if analysis::is_stale(last.as_ref(), event.timestamp_ms) {
            info!(
                "skipping a stale price for {} at {}: the stored one is newer",
                input.product,
                event.position()
            );
            return Ok(());
        }

        let source = Source {
            topic: event.topic.clone(),
            partition: event.partition,
            offset: event.offset,
            timestamp_ms: event.timestamp_ms,
        };
        let old_price = last.map(|last| last.price);
        if let Some(decision) = analysis::decide(&input, old_price, threshold, source) {
            let stock = stock_of(&input.product)?;
            let decision = analysis::apply_stock(decision, stock);
            publish(&decision)?;
            hand_to_orders(&decision)?;
        }

        state::set_json(
            &key,
            &LastPrice {
                price: input.price,
                timestamp_ms: event.timestamp_ms,
            },
        )?;
        Ok(())
    }

    fn on_message(message: Message) -> Result<Reply, Failure> {
        // A product id as text (A2A), or `{"product": …}` as data (the MCP tool's arguments).
        let asked: Option<serde_json::Value> = message
            .data()
            .next()
            .and_then(|d| serde_json::from_str(d).ok());
        let product = match asked.as_ref().and_then(|v| v["product"].as_str()) {
            Some(product) => product.trim().to_string(),
            None => message.text().trim().to_string(),
        };
        if product.is_empty() {
            return Ok(Reply::text(
                "send a product id (e.g. sku-1) to get its last known price",
            ));
        }
        let last = load_last_price(&analysis::state_key(&product))?;
        let answer = match &last {
            Some(last) => format!("{product}: last known price {}", last.price),
            None => format!("{product}: no price known"),
        };
        let data = serde_json::json!({ "product": product, "price": last.map(|l| l.price) });
        let mut reply = Reply::text(answer);
        if let Some(message) = reply.message.as_mut() {
            message.parts.push(Part::Data(data.to_string()));
        }
        Ok(reply)
    }
}

/// The stored last price; a value that does not parse is logged and treated as absent (it is
/// replaced by the next write), so one bad write cannot dead-letter a product forever.
fn load_last_price(key: &str) -> Result<Option<LastPrice>, Failure> {
    let Some(bytes) = state::get(key)? else {
        return Ok(None);
    };
    match serde_json::from_slice(&bytes) {
        Ok(last) => Ok(Some(last)),
        Err(error) => {
            warn!("ignoring malformed state {key:?}: {error}");
            Ok(None)
        }
    }
}

/// The product's stock from the inventory service's `get_inventory` tool.
fn stock_of(product: &str) -> Result<Stock, Failure> {
    let server = config::get_or("inventory", analysis::DEFAULT_INVENTORY_SERVER);
    let result = mcp::call_json(
        &server,
        "get_inventory",
        &serde_json::json!({ "product": product }),
    )?;
    if result.is_error {
        return Err(Failure::retry(format!(
            "{server}/get_inventory failed for {product}: {}",
            result.text()
        )));
    }
    match result.structured::<Stock>()? {
        Some(stock) => Ok(stock),
        // Servers without structured output put the same JSON in a text item.
        None => serde_json::from_str(&result.text()).map_err(|error| {
            Failure::retry(format!(
                "{server}/get_inventory answered for {product} without stock figures: {error}"
            ))
        }),
    }
}

/// Sends the decision to the order-update agent (config `orders`) over A2A and waits for it.
fn hand_to_orders(decision: &Decision) -> Result<(), Failure> {
    let peer = config::get_or("orders", analysis::DEFAULT_ORDERS_PEER);
    let json = serde_json::to_string(decision)
        .map_err(|e| Failure::reject(format!("cannot serialize the decision: {e}")))?;
    let mut message = Message::from_text(Role::User, "");
    message.parts = vec![Part::Data(json)];
    let answer = a2a::send(&peer, &message)?;
    match answer.state {
        TaskState::Completed => {
            info!("{}: {}", peer, answer.text());
            Ok(())
        }
        // The decision itself is wrong for it: retrying sends the same one.
        TaskState::Rejected => Err(Failure::reject(format!(
            "{peer} rejected the decision for {}: {}",
            decision.product,
            answer.text()
        ))),
        other => Err(Failure::retry(format!(
            "{peer} ended the task {other:?} for {}: {}",
            decision.product,
            answer.text()
        ))),
    }
}

fn publish(decision: &Decision) -> Result<(), Failure> {
    let out = config::get_or("out", analysis::DEFAULT_OUT);
    let receipt = bus::Record::json(&out, decision)?
        .key(decision.product.as_str())
        .publish()?;
    info!(
        "{} {}: new price {} is {:+.2}% vs the {} price {}; decision at {} partition {} offset {}",
        decision.recommendation.as_str(),
        decision.product,
        decision.new_price,
        decision.change * 100.0,
        decision.basis.as_str(),
        decision.reference_price,
        receipt.topic,
        receipt.partition,
        receipt.offset
    );
    Ok(())
}

agenthost_sdk::export_agent!(PriceAnalysis);
