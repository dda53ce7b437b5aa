//! Builders for [`Card`] and [`Skill`].

use crate::{Card, Skill};

/// The tag prefix that carries a skill's input schema (see [`Skill::input_schema`]): the WIT
/// `skill` record of contract 0.1.0 has no field for it, and the host takes this tag out of the
/// card it shows.
pub const INPUT_SCHEMA_TAG: &str = "agenthost:input-schema=";

impl Card {
    /// A card with a name and a version (usually `env!("CARGO_PKG_VERSION")`), no description
    /// and no skills.
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        Card {
            name: name.into(),
            description: String::new(),
            version: version.into(),
            skills: Vec::new(),
        }
    }

    /// Set the description.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// Add a skill.
    pub fn skill(mut self, skill: Skill) -> Self {
        self.skills.push(skill);
        self
    }
}

impl Skill {
    /// A skill with an id (what A2A peers address) and a human-readable name.
    pub fn new(id: impl Into<String>, name: impl Into<String>) -> Self {
        Skill {
            id: id.into(),
            name: name.into(),
            description: String::new(),
            tags: Vec::new(),
            examples: Vec::new(),
        }
    }

    /// Set the description.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// Add a tag.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.push(tag.into());
        self
    }

    /// Add an example prompt.
    pub fn example(mut self, example: impl Into<String>) -> Self {
        self.examples.push(example.into());
        self
    }

    /// Declare what the skill takes, as a JSON Schema of `"type": "object"`. A host serving the
    /// skill as an MCP tool offers the schema to clients and refuses arguments that fail it
    /// before the agent runs; the agent then receives the arguments as one data part (read it
    /// with [`crate::Message::data`]). Without one, the tool takes `{ "text": string }` and the
    /// agent a text part. A schema the host cannot compile fails the deployment.
    pub fn input_schema(mut self, schema: serde_json::Value) -> Self {
        self.tags.retain(|t| !t.starts_with(INPUT_SCHEMA_TAG));
        self.tags.push(format!("{INPUT_SCHEMA_TAG}{schema}"));
        self
    }

    /// The input schema declared with [`Skill::input_schema`], if any.
    pub fn declared_input_schema(&self) -> Option<serde_json::Value> {
        self.tags
            .iter()
            .find_map(|t| t.strip_prefix(INPUT_SCHEMA_TAG))
            .and_then(|json| serde_json::from_str(json).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_input_schema_travels_as_one_tag() {
        let schema = serde_json::json!({ "type": "object", "required": ["sku"] });
        let skill = Skill::new("quote", "Quote")
            .tag("pricing")
            .input_schema(serde_json::json!({ "type": "object" }))
            .input_schema(schema.clone());
        assert_eq!(skill.tags.len(), 2, "the second schema replaces the first");
        assert_eq!(skill.tags[0], "pricing");
        assert_eq!(skill.declared_input_schema(), Some(schema));
    }
}
