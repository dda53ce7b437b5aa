//! Agent cards: what an exposed agent says about itself, from its `card()` export, its
//! manifest and the host's A2A config. One card serves both protocol versions: the v1.0
//! fields (`supportedInterfaces`, `securityRequirements`, wrapped security schemes) and the
//! v0.3 ones (`url`, `preferredTransport`, `protocolVersion`, `security`, typed schemes) side by
//! side, which the reference clients of both versions accept.

use super::ResolvedScheme;
use crate::agent::AgentVersion;
use crate::config::A2aSchemeKind;
use serde_json::{Map, Value, json};

/// The media types agents take and give: text parts, and JSON data parts.
const MODES: [&str; 2] = ["text/plain", "application/json"];

pub fn agent_card(agent: &AgentVersion, url: &str, schemes: &[&ResolvedScheme]) -> Value {
    let card = &agent.card;
    let manifest = &agent.manifest;
    let description = if card.description.is_empty() {
        manifest.description.clone()
    } else {
        card.description.clone()
    };
    let skills: Vec<Value> = card
        .skills
        .iter()
        .map(|s| {
            json!({
                "id": s.id,
                "name": s.name,
                "description": s.description,
                "tags": s.tags,
                "examples": s.examples,
            })
        })
        .collect();
    let mut value = json!({
        "name": manifest.name.as_str(),
        "description": description,
        "version": agent.version.to_string(),
        "supportedInterfaces": [
            { "url": url, "protocolBinding": "JSONRPC", "protocolVersion": "1.0" },
            { "url": url, "protocolBinding": "JSONRPC", "protocolVersion": "0.3" },
        ],
        "provider": { "organization": "agenthost", "url": url },
        "capabilities": { "streaming": true, "pushNotifications": false },
        "defaultInputModes": MODES,
        "defaultOutputModes": MODES,
        "skills": skills,
        // v0.3 clients read these.
        "url": url,
        "preferredTransport": "JSONRPC",
        "protocolVersion": "0.3.0",
    });
    // Skills served over the bus: the custom binding (see `super::bus`), one interface each.
    if let Some(interfaces) = value["supportedInterfaces"].as_array_mut() {
        for skill in &manifest.a2a.bus_skills {
            interfaces.push(json!({
                "url": format!("bus:{}", super::bus::request_topic(skill)),
                "protocolBinding": super::bus::BINDING,
                "protocolVersion": "1.0",
            }));
        }
    }
    if !schemes.is_empty() {
        let mut defs = Map::new();
        for scheme in schemes {
            defs.insert(scheme.name.clone(), scheme_json(scheme));
        }
        value["securitySchemes"] = Value::Object(defs);
        // Any one scheme suffices: a list of alternatives.
        value["securityRequirements"] = schemes
            .iter()
            .map(|s| json!({ "schemes": { s.name.clone(): { "list": [] } } }))
            .collect();
        value["security"] = schemes
            .iter()
            .map(|s| json!({ s.name.clone(): [] }))
            .collect();
    }
    value
}

fn scheme_json(scheme: &ResolvedScheme) -> Value {
    match scheme.kind {
        A2aSchemeKind::Bearer => json!({
            "httpAuthSecurityScheme": { "scheme": "bearer", "description": "Bearer token" },
            "type": "http",
            "scheme": "bearer",
            "description": "Bearer token",
        }),
        A2aSchemeKind::ApiKey => json!({
            "apiKeySecurityScheme": { "location": "header", "name": scheme.header, "description": "API key" },
            "type": "apiKey",
            "in": "header",
            "name": scheme.header,
            "description": "API key",
        }),
    }
}
