//! `sockets`: a test fixture that tries to reach the network without the host, through
//! `std::net` — which makes the component import `wasi:sockets`. agenthost never links sockets,
//! so deploying it must be refused, naming the interface.

use agenthost_sdk::{Agent, Card, Event, Failure};
use std::io::Write;

struct Sockets;

impl Agent for Sockets {
    fn card() -> Card {
        Card::new("sockets", env!("CARGO_PKG_VERSION"))
            .description("Opens a raw TCP socket (must be refused)")
    }

    fn on_event(event: Event) -> Result<(), Failure> {
        let mut stream = std::net::TcpStream::connect("127.0.0.1:9")
            .map_err(|e| Failure::retry(e.to_string()))?;
        stream
            .write_all(&event.payload)
            .map_err(|e| Failure::retry(e.to_string()))?;
        Ok(())
    }
}

agenthost_sdk::export_agent!(Sockets);
