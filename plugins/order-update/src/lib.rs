//! `order-update`: turns price decisions into order updates. It receives tasks over A2A —
//! from `price-analysis` in the pricing scenario — and publishes what changes for the product.
//!
//! # Input (an A2A message)
//!
//! A data part holding a price decision as `price-analysis` publishes it (`product`,
//! `recommendation`, `suggested_price`, `new_price`, `currency`, `inventory`), or a text part
//! with the same JSON. Anything else ends the task `rejected`, with a message saying what was
//! expected.
//!
//! # What it does
//!
//! | recommendation | order update published (`ecommerce.order-updated.v1`, config `out`) |
//! |---|---|
//! | `lower`, `raise` | `{"product", "action": "reprice", "price": suggested_price, "currency"}` |
//! | `hold` | `{"product", "action": "restock", "incoming": …}`: out of stock, order more |
//! | `review` | nothing: a human decides; the reply says so |
//!
//! Every update is keyed by the product and remembered in state (`last-update/<product>`). The
//! reply is a text message describing the update, task `completed`.
//!
//! Config: `out` (default `ecommerce.order-updated.v1`). Imports: `bus`, `state`, `config`.

use agenthost_sdk::{Agent, Card, Failure, Message, Reply, Skill, TaskState, bus, config, state};
use serde::{Deserialize, Serialize};

struct OrderUpdate;

#[derive(Deserialize)]
struct Decision {
    product: String,
    recommendation: String,
    #[serde(default)]
    suggested_price: Option<f64>,
    #[serde(default)]
    currency: Option<String>,
    #[serde(default)]
    inventory: Option<Stock>,
}

#[derive(Deserialize)]
struct Stock {
    #[serde(default)]
    incoming: i64,
}

#[derive(Serialize)]
struct Update<'a> {
    product: &'a str,
    action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    price: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    currency: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    incoming: Option<i64>,
}

fn decision_of(message: &Message) -> Result<Decision, String> {
    let json = message
        .data()
        .next()
        .map(str::to_owned)
        .unwrap_or_else(|| message.text());
    serde_json::from_str(&json).map_err(|e| {
        format!("expected a price decision (JSON with product and recommendation): {e}")
    })
}

impl Agent for OrderUpdate {
    fn card() -> Card {
        Card::new("order-update", env!("CARGO_PKG_VERSION"))
            .description(
                "Turns price decisions into order updates: reprice, restock, or leave to a human",
            )
            .skill(
                Skill::new("order-update", "Order update")
                    .description(
                        "Takes a price decision and publishes the order update it calls for",
                    )
                    .tag("pricing")
                    .tag("orders")
                    .example(r#"{"product": "sku-2", "recommendation": "hold"}"#),
            )
    }

    fn on_message(message: Message) -> Result<Reply, Failure> {
        let decision = match decision_of(&message) {
            Ok(d) => d,
            Err(reason) => return Ok(Reply::text(reason).with_state(TaskState::Rejected)),
        };
        let product = decision.product.as_str();
        let update = match decision.recommendation.as_str() {
            "lower" | "raise" => Update {
                product,
                action: "reprice",
                price: decision.suggested_price,
                currency: decision.currency.as_deref(),
                incoming: None,
            },
            "hold" => Update {
                product,
                action: "restock",
                price: None,
                currency: None,
                incoming: decision.inventory.as_ref().map(|s| s.incoming),
            },
            "review" => {
                return Ok(Reply::text(format!(
                    "{product}: no order update, the price change needs a human review"
                )));
            }
            other => {
                return Ok(Reply::text(format!(
                    "{product}: unknown recommendation {other:?}; expected lower, raise, hold or review"
                ))
                .with_state(TaskState::Rejected));
            }
        };
        let out = config::get_or("out", "ecommerce.order-updated.v1");
        bus::Record::json(&out, &update)?.key(product).publish()?;
        state::set_json(&format!("last-update/{product}"), &update)?;
        let text = match update.action {
            "reprice" => format!(
                "{product}: reprice to {} {}",
                update.price.map_or("?".into(), |p| p.to_string()),
                update.currency.unwrap_or("")
            ),
            _ => format!(
                "{product}: restock ({} incoming)",
                update.incoming.unwrap_or(0)
            ),
        };
        Ok(Reply::text(text.trim_end().to_owned()))
    }
}

agenthost_sdk::export_agent!(OrderUpdate);
