//! Builders for [`Card`] and [`Skill`].

use crate::{Card, Skill};

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
}
