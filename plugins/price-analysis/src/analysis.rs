//! The decision logic: pure functions, tested on the host target.

use serde::{Deserialize, Serialize};

/// The default topic for decisions (config `out`).
pub const DEFAULT_OUT: &str = "action.price-adjustment.v1";
/// The agent decisions are handed to when config `orders` is not set.
pub const DEFAULT_ORDERS_PEER: &str = "order-update";
/// The MCP server asked for stock when config `inventory` is not set.
pub const DEFAULT_INVENTORY_SERVER: &str = "inventory";
/// The default relative gap that triggers a decision (config `threshold`).
pub const DEFAULT_THRESHOLD: f64 = 0.05;
/// Gaps within this distance of the threshold count as equal to it, so that `100 → 105` with a
/// threshold of `0.05` does not fire on floating-point noise.
const EPSILON: f64 = 1e-9;
/// The longest product id accepted (it becomes part of a state key and the record key).
pub const MAX_PRODUCT_LEN: usize = 256;

/// An `ecommerce.price-changed.v1` event. Unknown fields are ignored.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct PriceChanged {
    /// The product id (SKU).
    pub product: String,
    /// Our new price.
    pub price: f64,
    /// A competitor's price for the same product, when known.
    #[serde(default)]
    pub competitor_price: Option<f64>,
    /// ISO 4217 code, copied to the decision.
    #[serde(default)]
    pub currency: Option<String>,
}

impl PriceChanged {
    /// Check what serde cannot: a usable product id and positive, finite prices.
    pub fn validate(&self) -> Result<(), String> {
        if self.product.trim().is_empty() {
            return Err("`product` is empty".to_string());
        }
        if self.product.len() > MAX_PRODUCT_LEN {
            return Err(format!(
                "`product` is {} bytes long, more than {MAX_PRODUCT_LEN}",
                self.product.len()
            ));
        }
        if self.product.chars().any(char::is_control) {
            return Err("`product` contains control characters".to_string());
        }
        check_price("price", self.price)?;
        if let Some(competitor) = self.competitor_price {
            check_price("competitor_price", competitor)?;
        }
        Ok(())
    }
}

fn check_price(field: &str, value: f64) -> Result<(), String> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(format!("`{field}` must be a positive number, got {value}"))
    }
}

/// Check the `threshold` config value: a finite fraction, zero or more.
pub fn check_threshold(threshold: f64) -> Result<f64, String> {
    if threshold.is_finite() && threshold >= 0.0 {
        Ok(threshold)
    } else {
        Err(format!(
            "config key \"threshold\" must be a fraction of 0 or more (e.g. \"0.05\"), got {threshold}"
        ))
    }
}

/// What the state keeps per product, under [`state_key`].
#[derive(Clone, Debug, Deserialize, PartialEq, Serialize)]
pub struct LastPrice {
    pub price: f64,
    /// The bus timestamp of the event that set it.
    pub timestamp_ms: u64,
}

/// The state key of a product's last price.
pub fn state_key(product: &str) -> String {
    format!("last-price/{product}")
}

/// Whether an event is older than the stored price (a replay or a late record): it must not
/// overwrite a newer price, and is not analysed.
pub fn is_stale(last: Option<&LastPrice>, timestamp_ms: u64) -> bool {
    last.is_some_and(|last| timestamp_ms < last.timestamp_ms)
}

/// What a decision compares the new price against.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Basis {
    /// The competitor price carried by the event.
    Competitor,
    /// Our last known price for the product.
    Previous,
}

impl Basis {
    /// The name used in the decision JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Basis::Competitor => "competitor",
            Basis::Previous => "previous",
        }
    }
}

/// What the decision recommends.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Recommendation {
    /// We are above the competitor by more than the threshold: lower to `suggested_price`.
    Lower,
    /// We are below the competitor by more than the threshold: raise to `suggested_price`.
    Raise,
    /// Our own price moved by more than the threshold with no competitor price to judge it
    /// against: a human should look.
    Review,
    /// We would lower, but nothing is in stock: a cheaper price sells nothing. Keep the price.
    Hold,
}

impl Recommendation {
    /// The name used in the decision JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Recommendation::Lower => "lower",
            Recommendation::Raise => "raise",
            Recommendation::Review => "review",
            Recommendation::Hold => "hold",
        }
    }
}

/// Where the triggering event was on the bus.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Source {
    pub topic: String,
    pub partition: u32,
    pub offset: u64,
    pub timestamp_ms: u64,
}

/// An `action.price-adjustment.v1` decision.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Decision {
    pub product: String,
    /// Our last known price (`null` when this is the first price seen for the product).
    pub old_price: Option<f64>,
    pub new_price: f64,
    pub basis: Basis,
    /// The price `change` is measured against: the competitor's or `old_price`.
    pub reference_price: f64,
    /// `(new_price - reference_price) / reference_price`: `0.08` is 8 % above.
    pub change: f64,
    pub threshold: f64,
    pub recommendation: Recommendation,
    /// The price to move to, for `lower` and `raise`.
    pub suggested_price: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// Stock of the product, from the inventory service's `get_inventory` tool.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inventory: Option<Stock>,
    pub source: Source,
}

/// What the inventory service's `get_inventory` tool returns (its structured content); other
/// fields are ignored.
#[derive(Clone, Debug, Deserialize, PartialEq, Serialize)]
pub struct Stock {
    pub on_hand: i64,
    #[serde(default)]
    pub incoming: i64,
}

/// Adjusts a decision to the product's stock: lowering the price of something out of stock
/// sells nothing, so `lower` becomes `hold` (no suggested price) when nothing is on hand.
pub fn apply_stock(mut decision: Decision, stock: Stock) -> Decision {
    if decision.recommendation == Recommendation::Lower && stock.on_hand <= 0 {
        decision.recommendation = Recommendation::Hold;
        decision.suggested_price = None;
    }
    decision.inventory = Some(stock);
    decision
}

/// `(new - reference) / reference`.
pub fn relative_change(new: f64, reference: f64) -> f64 {
    (new - reference) / reference
}

/// Decide whether `event` calls for a price adjustment, given our last known price and the
/// threshold. `None`: nothing to do.
///
/// With a competitor price, the new price is compared against it: more than `threshold` above
/// recommends `lower`, more than `threshold` below recommends `raise`, both to the competitor's
/// price. Without one, it is compared against our last known price: a move of more than
/// `threshold` either way recommends `review`. The first price seen for a product, without a
/// competitor price, decides nothing.
pub fn decide(
    event: &PriceChanged,
    old_price: Option<f64>,
    threshold: f64,
    source: Source,
) -> Option<Decision> {
    let (basis, reference) = match (event.competitor_price, old_price) {
        (Some(competitor), _) => (Basis::Competitor, competitor),
        (None, Some(old)) => (Basis::Previous, old),
        (None, None) => return None,
    };
    let change = relative_change(event.price, reference);
    if change.abs() <= threshold + EPSILON {
        return None;
    }
    let (recommendation, suggested_price) = match basis {
        Basis::Competitor if change > 0.0 => (Recommendation::Lower, Some(reference)),
        Basis::Competitor => (Recommendation::Raise, Some(reference)),
        Basis::Previous => (Recommendation::Review, None),
    };
    Some(Decision {
        product: event.product.clone(),
        old_price,
        new_price: event.price,
        basis,
        reference_price: reference,
        change,
        threshold,
        recommendation,
        suggested_price,
        currency: event.currency.clone(),
        inventory: None,
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source() -> Source {
        Source {
            topic: "ecommerce.price-changed.v1".to_string(),
            partition: 0,
            offset: 7,
            timestamp_ms: 1_000,
        }
    }

    fn event(price: f64, competitor_price: Option<f64>) -> PriceChanged {
        PriceChanged {
            product: "sku-1".to_string(),
            price,
            competitor_price,
            currency: None,
        }
    }

    fn parse(json: &str) -> Result<PriceChanged, String> {
        let event: PriceChanged = serde_json::from_str(json).map_err(|e| e.to_string())?;
        event.validate()?;
        Ok(event)
    }

    #[test]
    fn parses_the_documented_schema() {
        let event = parse(
            r#"{"product":"sku-1","price":19.99,"competitor_price":17.5,"currency":"EUR","extra":[1]}"#,
        )
        .unwrap();
        assert_eq!(event.product, "sku-1");
        assert_eq!(event.price, 19.99);
        assert_eq!(event.competitor_price, Some(17.5));
        assert_eq!(event.currency.as_deref(), Some("EUR"));
        let minimal = parse(r#"{"product":"sku-2","price":3}"#).unwrap();
        assert_eq!(minimal.competitor_price, None);
    }

    #[test]
    fn rejects_bad_events_naming_the_problem() {
        let cases = [
            (r#"{"price":1}"#, "product"),
            (r#"{"product":"sku-1"}"#, "price"),
            (r#"{"product":"sku-1","price":"19.99"}"#, "invalid type"),
            (r#"{"product":"","price":1}"#, "`product` is empty"),
            (
                r#"{"product":"sku-1","price":0}"#,
                "`price` must be a positive",
            ),
            (
                r#"{"product":"sku-1","price":-2}"#,
                "`price` must be a positive",
            ),
            (
                r#"{"product":"sku-1","price":2,"competitor_price":0}"#,
                "`competitor_price` must be a positive",
            ),
            (r#"{"product":"a\u0000b","price":2}"#, "control characters"),
            ("not json", "expected"),
        ];
        for (json, expected) in cases {
            let error = parse(json).unwrap_err();
            assert!(error.contains(expected), "{json}: {error}");
        }
        let long = format!(r#"{{"product":"{}","price":1}}"#, "x".repeat(300));
        assert!(parse(&long).unwrap_err().contains("300 bytes"));
    }

    #[test]
    fn threshold_must_be_a_non_negative_fraction() {
        assert_eq!(check_threshold(0.05), Ok(0.05));
        assert_eq!(check_threshold(0.0), Ok(0.0));
        assert!(check_threshold(-0.1).unwrap_err().contains("threshold"));
        assert!(check_threshold(f64::NAN).is_err());
        assert!(check_threshold(f64::INFINITY).is_err());
    }

    #[test]
    fn first_price_without_competitor_decides_nothing() {
        assert_eq!(decide(&event(10.0, None), None, 0.05, source()), None);
    }

    #[test]
    fn small_moves_decide_nothing() {
        assert_eq!(decide(&event(10.4, None), Some(10.0), 0.05, source()), None);
        assert_eq!(decide(&event(9.6, None), Some(10.0), 0.05, source()), None);
        assert_eq!(decide(&event(10.0, Some(10.3)), None, 0.05, source()), None);
    }

    #[test]
    fn exactly_the_threshold_is_not_exceeding_it() {
        // 105 / 100 - 1 is 0.05000000000000004 in f64.
        assert_eq!(
            decide(&event(105.0, None), Some(100.0), 0.05, source()),
            None
        );
        assert_eq!(
            decide(&event(100.0, Some(105.0)), None, 0.0, source()).map(|d| d.recommendation),
            Some(Recommendation::Raise)
        );
        assert_eq!(
            decide(&event(100.0, Some(100.0)), None, 0.0, source()),
            None
        );
    }

    #[test]
    fn own_price_jump_asks_for_review() {
        let decision = decide(&event(12.0, None), Some(10.0), 0.05, source()).unwrap();
        assert_eq!(decision.basis, Basis::Previous);
        assert_eq!(decision.recommendation, Recommendation::Review);
        assert_eq!(decision.old_price, Some(10.0));
        assert_eq!(decision.reference_price, 10.0);
        assert!((decision.change - 0.2).abs() < 1e-12);
        assert_eq!(decision.suggested_price, None);
        let drop = decide(&event(8.0, None), Some(10.0), 0.05, source()).unwrap();
        assert_eq!(drop.recommendation, Recommendation::Review);
        assert!((drop.change + 0.2).abs() < 1e-12);
    }

    #[test]
    fn competitor_price_takes_precedence() {
        // Unchanged against our last price, but 14 % above the competitor.
        let decision = decide(&event(19.99, Some(17.5)), Some(19.99), 0.05, source()).unwrap();
        assert_eq!(decision.basis, Basis::Competitor);
        assert_eq!(decision.recommendation, Recommendation::Lower);
        assert_eq!(decision.suggested_price, Some(17.5));
        assert_eq!(decision.reference_price, 17.5);
        assert!((decision.change - (19.99 - 17.5) / 17.5).abs() < 1e-12);
        // A big move against our last price, but in line with the competitor.
        assert_eq!(
            decide(&event(15.0, Some(15.2)), Some(20.0), 0.05, source()),
            None
        );
        // Far below the competitor.
        let raise = decide(&event(10.0, Some(12.0)), None, 0.05, source()).unwrap();
        assert_eq!(raise.recommendation, Recommendation::Raise);
        assert_eq!(raise.suggested_price, Some(12.0));
        assert_eq!(raise.old_price, None);
    }

    #[test]
    fn decision_json_shape() {
        let mut input = event(12.0, Some(10.0));
        input.currency = Some("EUR".to_string());
        let decision = decide(&input, Some(11.0), 0.05, source()).unwrap();
        let json = serde_json::to_value(&decision).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "product": "sku-1",
                "old_price": 11.0,
                "new_price": 12.0,
                "basis": "competitor",
                "reference_price": 10.0,
                "change": decision.change,
                "threshold": 0.05,
                "recommendation": "lower",
                "suggested_price": 10.0,
                "currency": "EUR",
                "source": {
                    "topic": "ecommerce.price-changed.v1",
                    "partition": 0,
                    "offset": 7,
                    "timestamp_ms": 1000
                }
            })
        );
        let review = decide(&event(12.0, None), Some(10.0), 0.05, source()).unwrap();
        let json = serde_json::to_value(&review).unwrap();
        assert_eq!(json["recommendation"], "review");
        assert_eq!(json["suggested_price"], serde_json::Value::Null);
        assert!(json.get("currency").is_none());
        assert_eq!(json["basis"], review.basis.as_str());
        assert_eq!(json["recommendation"], review.recommendation.as_str());
    }

    #[test]
    fn stale_events_are_detected() {
        let last = LastPrice {
            price: 10.0,
            timestamp_ms: 2_000,
        };
        assert!(is_stale(Some(&last), 1_999));
        assert!(
            !is_stale(Some(&last), 2_000),
            "a replay of the same event is not stale"
        );
        assert!(!is_stale(Some(&last), 2_001));
        assert!(!is_stale(None, 0));
    }

    #[test]
    fn state_round_trip() {
        let last = LastPrice {
            price: 19.99,
            timestamp_ms: 5,
        };
        let bytes = serde_json::to_vec(&last).unwrap();
        assert_eq!(serde_json::from_slice::<LastPrice>(&bytes).unwrap(), last);
        assert_eq!(state_key("sku-1"), "last-price/sku-1");
    }

    #[test]
    fn out_of_stock_holds_a_lower_but_nothing_else() {
        let lower = decide(&event(10.0, Some(8.0)), None, 0.05, source()).unwrap();
        assert_eq!(lower.recommendation, Recommendation::Lower);
        let empty = Stock {
            on_hand: 0,
            incoming: 5,
        };
        let held = apply_stock(lower.clone(), empty.clone());
        assert_eq!(held.recommendation, Recommendation::Hold);
        assert_eq!(held.suggested_price, None);
        assert_eq!(held.inventory, Some(empty.clone()));

        let stocked = apply_stock(
            lower,
            Stock {
                on_hand: 3,
                incoming: 0,
            },
        );
        assert_eq!(stocked.recommendation, Recommendation::Lower);
        assert_eq!(stocked.suggested_price, Some(8.0));

        let raise = decide(&event(7.0, Some(8.0)), None, 0.05, source()).unwrap();
        assert_eq!(
            apply_stock(raise, empty).recommendation,
            Recommendation::Raise
        );
    }
}
