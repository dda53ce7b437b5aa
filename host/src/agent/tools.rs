//! The MCP tools an exposed agent offers (docs/mcp.md, "The host as an MCP server"): one per
//! card skill, named by the manifest's `[mcp] tool_names` — `<agent>.<skill>` by default, or
//! the skill ids as they are — and checked at deploy: a name MCP clients accept, once per
//! agent, and not already served by another exposed agent on the shared `/mcp` endpoint.

use super::{AgentVersion, SkillInfo};
use crate::manifest::ToolNames;

/// The longest tool name MCP clients must accept (the 2025-11-25 revision's guidance).
const MAX_NAME: usize = 128;

/// The tools of `agent`'s card: `(name, skill)`, in the card's order.
pub fn tools(agent: &AgentVersion) -> impl Iterator<Item = (String, &SkillInfo)> {
    let naming = agent.manifest.mcp.tool_names;
    agent
        .card
        .skills
        .iter()
        .map(move |skill| (tool_name(naming, &agent.name, &skill.id), skill))
}

/// The tool name of `agent`'s skill `skill` under `naming`.
pub fn tool_name(naming: ToolNames, agent: &str, skill: &str) -> String {
    match naming {
        ToolNames::SkillId => skill.to_owned(),
        ToolNames::Prefixed
            if skill
                .strip_prefix(agent)
                .is_some_and(|rest| rest.starts_with('.')) =>
        {
            skill.to_owned()
        }
        ToolNames::Prefixed => format!("{agent}.{skill}"),
    }
}

/// Refuses tools of `agent` whose names MCP clients would reject (1–128 of `A–Z a–z 0–9 _ - .`),
/// that repeat within the agent, or that an agent of `others` (the other exposed agents)
/// already serves. Nothing to check for an agent that is not exposed.
pub fn check<'a>(
    agent: &AgentVersion,
    others: impl IntoIterator<Item = &'a AgentVersion>,
) -> Result<(), String> {
    if !agent.manifest.mcp.expose {
        return Ok(());
    }
    let mut names = std::collections::BTreeMap::new();
    for (name, skill) in tools(agent) {
        let valid = !name.is_empty()
            && name.len() <= MAX_NAME
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if !valid {
            return Err(format!(
                "skill {:?} would be the MCP tool {name:?}, which is not a tool name clients accept (1 to {MAX_NAME} of A-Z, a-z, 0-9, `_`, `-`, `.`): give the skill such an id, or keep `[mcp] tool_names = \"prefixed\"`",
                skill.id
            ));
        }
        if let Some(first) = names.insert(name.clone(), &skill.id) {
            return Err(format!(
                "skills {first:?} and {:?} would both be the MCP tool {name:?}",
                skill.id
            ));
        }
    }
    for other in others {
        if other.name == agent.name || !other.manifest.mcp.expose {
            continue;
        }
        if let Some((name, _)) = tools(other).find(|(name, _)| names.contains_key(name)) {
            return Err(format!(
                "the MCP tool {name:?} is already served by agent {:?} on /mcp: rename the skill, or use `[mcp] tool_names = \"prefixed\"`",
                other.name
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixed_names_name_the_agent_once_and_skill_ids_stay_as_they_are() {
        assert_eq!(tool_name(ToolNames::Prefixed, "w1", "count"), "w1.count");
        assert_eq!(tool_name(ToolNames::Prefixed, "w1", "w1.count"), "w1.count");
        assert_eq!(
            tool_name(ToolNames::Prefixed, "w1", "w10.count"),
            "w1.w10.count"
        );
        assert_eq!(tool_name(ToolNames::SkillId, "w1", "count"), "count");
    }
}
