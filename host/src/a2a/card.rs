//! Agent cards: what an exposed agent says about itself, from its `card()` export, its
//! manifest and the host's A2A config, in the form the requester speaks (docs/a2a.md, "Agent
//! cards"). A 1.0 client (`A2A-Version: 1` or above, header or query parameter) gets a card
//! with only the 1.0 fields (`supportedInterfaces`, `securityRequirements`, wrapped security
//! schemes), which the 1.0 AgentCard schema accepts. A request without a version is from a 0.3
//! client as far as the spec is concerned (it says to assume 0.3 for an empty header), so it
//! gets the 1.0 fields and the 0.3 ones (`url`, `preferredTransport`, `protocolVersion`,
//! `security`, typed schemes) side by side: 0.3 clients read theirs, and 1.0 SDKs that fetch
//! a card before they set their version header still find `supportedInterfaces`.

use super::ResolvedScheme;
use crate::agent::AgentVersion;
use crate::config::A2aSchemeKind;
use serde_json::{Map, Value, json};

/// The media types agents take and give: text parts, and JSON data parts.
const MODES: [&str; 2] = ["text/plain", "application/json"];

/// Which card a request gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CardForm {
    /// Only the 1.0 fields: a request naming version 1 or above.
    V1,
    /// The 1.0 and 0.3 fields side by side: a request naming 0.x or no version.
    Mixed,
}

impl CardForm {
    /// The form for a request's `A2A-Version` (header, else query parameter): only its major
    /// number counts, and an unknown major above 0 gets the newest card (a card fetch is
    /// discovery, not an operation to refuse).
    pub fn for_version(version: Option<&str>) -> Self {
        let major = version
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .and_then(|v| v.split('.').next())
            .and_then(|major| major.parse::<u32>().ok());
        match major {
            Some(major) if major >= 1 => Self::V1,
            _ => Self::Mixed,
        }
    }
}

pub fn agent_card(
    agent: &AgentVersion,
    url: &str,
    schemes: &[&ResolvedScheme],
    form: CardForm,
) -> Value {
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
    });
    if form == CardForm::Mixed {
        // v0.3 clients read these.
        value["url"] = json!(url);
        value["preferredTransport"] = json!("JSONRPC");
        value["protocolVersion"] = json!("0.3.0");
    }
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
            defs.insert(scheme.name.clone(), scheme_json(scheme, form));
        }
        value["securitySchemes"] = Value::Object(defs);
        // Any one scheme suffices: a list of alternatives.
        value["securityRequirements"] = schemes
            .iter()
            .map(|s| json!({ "schemes": { s.name.clone(): { "list": [] } } }))
            .collect();
        if form == CardForm::Mixed {
            value["security"] = schemes
                .iter()
                .map(|s| json!({ s.name.clone(): [] }))
                .collect();
        }
    }
    value
}

/// A security scheme: the 1.0 wrapped form, with the 0.3 typed fields beside it in a mixed card.
fn scheme_json(scheme: &ResolvedScheme, form: CardForm) -> Value {
    let (mut value, legacy) = match scheme.kind {
        A2aSchemeKind::Bearer => (
            json!({ "httpAuthSecurityScheme": { "scheme": "bearer", "description": "Bearer token" } }),
            json!({ "type": "http", "scheme": "bearer", "description": "Bearer token" }),
        ),
        A2aSchemeKind::ApiKey => (
            json!({ "apiKeySecurityScheme": { "location": "header", "name": scheme.header, "description": "API key" } }),
            json!({ "type": "apiKey", "in": "header", "name": scheme.header, "description": "API key" }),
        ),
    };
    if form == CardForm::Mixed
        && let (Some(value), Value::Object(legacy)) = (value.as_object_mut(), legacy)
    {
        value.extend(legacy);
    }
    value
}

#[cfg(test)]
mod tests {
    use super::CardForm;

    #[test]
    fn the_major_version_a_request_names_picks_the_card() {
        for (version, form) in [
            (None, CardForm::Mixed),
            (Some(""), CardForm::Mixed),
            (Some("0.3"), CardForm::Mixed),
            (Some("0.3.0"), CardForm::Mixed),
            (Some("1.0"), CardForm::V1),
            (Some(" 1.0.2 "), CardForm::V1),
            (Some("2.1"), CardForm::V1),
            (Some("latest"), CardForm::Mixed),
        ] {
            assert_eq!(CardForm::for_version(version), form, "{version:?}");
        }
    }
}
