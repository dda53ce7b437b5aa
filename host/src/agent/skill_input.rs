//! What a skill takes: the JSON Schema an agent's card declares for a skill's input, read and
//! compiled at deploy, so an MCP client is offered the schema and a call whose arguments fail it
//! never reaches the agent.
//!
//! The WIT `skill` record (contract 0.1.0) has no field for a schema, and adding one would make
//! every component built against 0.1.0 fail to instantiate. The SDKs' `Skill` builders carry it
//! as a reserved tag instead — `agenthost:input-schema=` followed by the schema's JSON — which
//! the host takes out of the card's tags here (see docs/mcp.md, "Skills as tools").

use serde_json::{Map, Value};
use std::sync::Arc;

/// The tag prefix that carries a skill's input schema.
pub const INPUT_SCHEMA_TAG: &str = "agenthost:input-schema=";

/// A skill's declared input: the schema as the card gave it, and its compiled validator.
#[derive(Clone)]
pub struct SkillInput {
    pub schema: Arc<Map<String, Value>>,
    validator: Arc<jsonschema::Validator>,
}

impl std::fmt::Debug for SkillInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SkillInput")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

impl serde::Serialize for SkillInput {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.schema.serialize(s)
    }
}

impl SkillInput {
    /// Parses and compiles a schema; the error says what is wrong with it.
    pub fn parse(json: &str) -> Result<Self, String> {
        let value: Value =
            serde_json::from_str(json).map_err(|e| format!("its input schema is not JSON: {e}"))?;
        let Value::Object(schema) = &value else {
            return Err("its input schema is not a JSON object".into());
        };
        if schema.get("type").and_then(Value::as_str) != Some("object") {
            // MCP tools take an object of named arguments.
            return Err("its input schema must have \"type\": \"object\"".into());
        }
        let validator = jsonschema::validator_for(&value)
            .map_err(|e| format!("its input schema is not a valid JSON Schema: {e}"))?;
        Ok(Self {
            schema: Arc::new(schema.clone()),
            validator: Arc::new(validator),
        })
    }

    /// Why `arguments` fail the schema (each failure with where it is), or `None`.
    pub fn check(&self, arguments: &Value) -> Option<String> {
        let failures: Vec<String> = self
            .validator
            .iter_errors(arguments)
            .take(5)
            .map(|e| {
                let at = e.instance_path().to_string();
                if at.is_empty() {
                    e.to_string()
                } else {
                    format!("{at}: {e}")
                }
            })
            .collect();
        (!failures.is_empty()).then(|| failures.join("; "))
    }
}

/// Splits a card's skill tags into the tags and the declared input schema, if any. Two schema
/// tags are an error: which one would be meant is not clear.
pub fn split_tags(tags: Vec<String>) -> Result<(Vec<String>, Option<SkillInput>), String> {
    let mut input = None;
    let mut plain = Vec::with_capacity(tags.len());
    for tag in tags {
        match tag.strip_prefix(INPUT_SCHEMA_TAG) {
            Some(json) => {
                if input.is_some() {
                    return Err("it declares its input schema twice".into());
                }
                input = Some(SkillInput::parse(json)?);
            }
            None => plain.push(tag),
        }
    }
    Ok((plain, input))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tag(schema: &Value) -> String {
        format!("{INPUT_SCHEMA_TAG}{schema}")
    }

    #[test]
    fn the_schema_tag_is_taken_out_of_the_tags_and_checks_arguments() {
        let schema = json!({
            "type": "object",
            "properties": { "sku": { "type": "string" }, "qty": { "type": "integer", "minimum": 1 } },
            "required": ["sku"]
        });
        let (tags, input) = split_tags(vec!["pricing".into(), tag(&schema)]).unwrap();
        assert_eq!(tags, ["pricing"]);
        let input = input.unwrap();
        assert_eq!(Value::Object((*input.schema).clone()), schema);
        assert_eq!(input.check(&json!({ "sku": "A1", "qty": 2 })), None);
        let why = input.check(&json!({ "qty": 0 })).unwrap();
        assert!(why.contains("\"sku\" is a required property"), "{why}");
        assert!(why.contains("/qty"), "{why}");
    }

    #[test]
    fn a_bad_schema_is_named() {
        let err = |tags: Vec<String>| split_tags(tags).unwrap_err();
        assert!(err(vec![format!("{INPUT_SCHEMA_TAG}{{nope")]).contains("not JSON"));
        assert!(err(vec![tag(&json!(["x"]))]).contains("not a JSON object"));
        assert!(err(vec![tag(&json!({ "type": "string" }))]).contains("\"type\": \"object\""));
        assert!(
            err(vec![tag(
                &json!({ "type": "object", "minProperties": "two" })
            )])
            .contains("not a valid JSON Schema")
        );
        let ok = tag(&json!({ "type": "object" }));
        assert!(err(vec![ok.clone(), ok]).contains("twice"));
        assert!(split_tags(vec!["a".into()]).unwrap().1.is_none());
    }
}
