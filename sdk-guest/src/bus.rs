//! Publish records to the bus (the `bus` import).
//!
//! Granted by the manifest's `capabilities.publish` topic patterns; publishing to any other
//! topic comes back as [`HostError::Denied`]. The host adds the `correlation-id`,
//! `agenthost-agent` and `agenthost-agent-version` headers itself ([`HOST_HEADERS`]), and drops
//! any `agenthost-*` or `a2a-*` header the agent sets: those names are the host's own.
//!
//! ```no_run
//! # fn demo() -> Result<(), agenthost_sdk::Failure> {
//! use agenthost_sdk::bus;
//!
//! bus::publish("audit.v1", "plain bytes")?;
//! bus::Record::new("orders.v1", br#"{"id":1}"#.to_vec())
//!     .key("order-1")
//!     .header("content-type", "application/json")
//!     .publish()?;
//! bus::publish_json("orders.v1", &serde_json::json!({ "id": 2 }))?;
//! // Without waiting for the broker: the host holds the event until it is acknowledged.
//! bus::Record::new("orders.v1", "fast").key("order-3").send()?;
//! # Ok(())
//! # }
//! ```
//!
//! `publish` waits for the bus to store the record and returns where it went; `send` returns
//! as soon as the host has checked the record and handed it to the bus, in order. The event
//! being handled is committed only once everything it sent is acknowledged, and handled again
//! if something is not — so `send` is just as safe, and much faster on Kafka, where
//! `publish` waits a broker round trip. Use `publish` when you need the receipt.

#[cfg(target_arch = "wasm32")]
use crate::bindings::agenthost::agent::bus as raw;
// Outside a component (unit tests): the fake host of `testing`.
#[cfg(not(target_arch = "wasm32"))]
use crate::testing::bus as raw;
use crate::{Failure, Header, HostError};
use serde::Serialize;

pub use raw::{Outgoing, Receipt};

/// The headers the host sets on every record an agent publishes.
pub const HOST_HEADERS: [&str; 3] = [
    "correlation-id",
    "agenthost-agent",
    "agenthost-agent-version",
];

/// Publish `payload` to `topic`, without key or headers. Returns once the bus has durably
/// accepted the record.
pub fn publish(topic: &str, payload: impl Into<Vec<u8>>) -> Result<Receipt, HostError> {
    Record::new(topic, payload).publish()
}

/// Publish `value` serialized as JSON to `topic`, with a `content-type: application/json`
/// header and no key ([`Record::json`] for a key or more headers).
///
/// A value that cannot be serialized is a [`Failure::Reject`]; a host error converts into a
/// [`Failure`] as usual (denied → reject, failed → retry).
pub fn publish_json<T: Serialize + ?Sized>(topic: &str, value: &T) -> Result<Receipt, Failure> {
    Ok(Record::json(topic, value)?.publish()?)
}

/// A record being built: topic, optional key, payload and headers.
#[derive(Clone, Debug, PartialEq)]
#[must_use = "a record is only sent by `publish` or `send`"]
pub struct Record {
    outgoing: Outgoing,
}

impl Record {
    /// A record for `topic` with `payload`, no key and no headers.
    pub fn new(topic: impl Into<String>, payload: impl Into<Vec<u8>>) -> Self {
        Record {
            outgoing: Outgoing {
                topic: topic.into(),
                key: None,
                payload: payload.into(),
                headers: Vec::new(),
            },
        }
    }

    /// A copy of `event` for `topic`: its payload, key and headers, without the headers the
    /// host sets ([`HOST_HEADERS`]) — the copy carries this agent's provenance, and the
    /// correlation id flows through the host.
    pub fn forward(topic: impl Into<String>, event: crate::Event) -> Self {
        let headers = event
            .headers
            .into_iter()
            .filter(|header| !HOST_HEADERS.contains(&header.key.as_str()));
        Record::new(topic, event.payload)
            .key_opt(event.key)
            .headers(headers)
    }

    /// A record for `topic` whose payload is `value` serialized as JSON, with a
    /// `content-type: application/json` header. A value that cannot be serialized is a
    /// [`Failure::Reject`] naming the topic.
    pub fn json<T: Serialize + ?Sized>(
        topic: impl Into<String>,
        value: &T,
    ) -> Result<Self, Failure> {
        let topic = topic.into();
        let payload = serde_json::to_vec(value).map_err(|error| {
            Failure::Reject(format!(
                "cannot serialize the record for topic {topic:?} as JSON: {error}"
            ))
        })?;
        Ok(Record::new(topic, payload).header("content-type", "application/json"))
    }

    /// Set the key (the bus partitions by it).
    pub fn key(mut self, key: impl Into<Vec<u8>>) -> Self {
        self.outgoing.key = Some(key.into());
        self
    }

    /// Set or clear the key, e.g. with an incoming [`Event`](crate::Event)'s key.
    pub fn key_opt(mut self, key: Option<Vec<u8>>) -> Self {
        self.outgoing.key = key;
        self
    }

    /// Add a header. Headers may repeat, as in Kafka.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.outgoing.headers.push(Header {
            key: name.into(),
            value: value.into(),
        });
        self
    }

    /// Add several headers, e.g. an incoming [`Event`](crate::Event)'s.
    pub fn headers(mut self, headers: impl IntoIterator<Item = Header>) -> Self {
        self.outgoing.headers.extend(headers);
        self
    }

    /// The record as the raw import takes it.
    pub fn into_outgoing(self) -> Outgoing {
        self.outgoing
    }

    /// Publish the record. Returns once the bus has durably accepted it.
    pub fn publish(self) -> Result<Receipt, HostError> {
        raw::publish(&self.outgoing)
    }

    /// Send the record without waiting for the bus to acknowledge it (see the module docs):
    /// a refusal (`denied`) still comes back at once.
    pub fn send(self) -> Result<(), HostError> {
        raw::send(&self.outgoing)
    }
}

impl From<Record> for Outgoing {
    fn from(record: Record) -> Self {
        record.outgoing
    }
}
