//! Helpers on [`Event`].

use crate::{Event, Failure};
use serde::de::DeserializeOwned;

impl Event {
    /// Where this record sits on the bus, for messages: `topic "t" partition 0 offset 42`.
    pub fn position(&self) -> String {
        format!(
            "topic {:?} partition {} offset {}",
            self.topic, self.partition, self.offset
        )
    }

    /// Parse the payload as JSON.
    ///
    /// A payload that does not parse is a permanent failure: the error is a
    /// [`Failure::Reject`] naming the topic, partition and offset, whether the payload is not
    /// JSON at all or JSON of another shape, and what serde found wrong (`missing field
    /// \`price\``), so the record is dead-lettered with a reason an operator can act on.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Failure> {
        serde_json::from_slice(&self.payload).map_err(|error| {
            Failure::Reject(format!(
                "payload at {} {}: {error}",
                self.position(),
                crate::json::what_is_wrong(&error)
            ))
        })
    }

    /// The payload as UTF-8 text; anything else is a [`Failure::Reject`] naming the record.
    pub fn text(&self) -> Result<&str, Failure> {
        std::str::from_utf8(&self.payload).map_err(|error| {
            Failure::Reject(format!(
                "payload at {} is not UTF-8 text: {error}",
                self.position()
            ))
        })
    }

    /// The value of the first header named `name` (exact, case-sensitive match, as in Kafka).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|header| header.key == name)
            .map(|header| header.value.as_slice())
    }

    /// The value of the first header named `name`, if it is UTF-8 text.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header(name)
            .and_then(|value| std::str::from_utf8(value).ok())
    }

    /// The record key, if there is one and it is UTF-8 text.
    pub fn key_str(&self) -> Option<&str> {
        self.key
            .as_deref()
            .and_then(|key| std::str::from_utf8(key).ok())
    }
}
