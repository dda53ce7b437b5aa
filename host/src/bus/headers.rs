//! The names of the record headers the host reads and writes, in one place: which headers are the
//! host's to set is a security property (an agent's own are dropped, see [`is_reserved`]).

/// The correlation id of a record, end to end: set on everything the host publishes.
pub const CORRELATION_ID: &str = "correlation-id";

/// Provenance the host sets on everything an agent publishes: which agent, which version.
pub const AGENT: &str = "agenthost-agent";
pub const AGENT_VERSION: &str = "agenthost-agent-version";

/// Set on a dead letter: how many attempts were made, the last error, and where the record was.
pub const ATTEMPTS: &str = "agenthost-attempts";
pub const ERROR: &str = "agenthost-error";
pub const SOURCE_TOPIC: &str = "agenthost-source-topic";
pub const SOURCE_PARTITION: &str = "agenthost-source-partition";
pub const SOURCE_OFFSET: &str = "agenthost-source-offset";

/// The bus envelope of A2A requests and results (docs/a2a.md, the bus binding): the request a
/// result answers, and the topic the result goes to.
pub const A2A_REQUEST_ID: &str = "a2a-request-id";
pub const A2A_REPLY_TO: &str = "a2a-reply-to";

/// Headers only the host sets: `agenthost-*` (provenance, dead-letter origin) and `a2a-*` (the
/// bus envelope of A2A requests and results). An agent's own are dropped from what it
/// publishes, so it cannot forge where a record came from or where a worker's answer goes.
pub fn is_reserved(key: &str) -> bool {
    let key = key.as_bytes();
    let starts = |prefix: &[u8]| {
        key.len() >= prefix.len() && key[..prefix.len()].eq_ignore_ascii_case(prefix)
    };
    starts(b"agenthost-") || starts(b"a2a-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hosts_prefixes_are_reserved_in_any_case() {
        for key in [
            "agenthost-agent",
            "AgentHost-Error",
            "a2a-reply-to",
            "A2A-Request-Id",
        ] {
            assert!(is_reserved(key), "{key}");
        }
        for key in ["correlation-id", "content-type", "x-a2a-note", "agent"] {
            assert!(!is_reserved(key), "{key}");
        }
    }
}
