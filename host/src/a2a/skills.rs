//! Who owns a skill id. An agent's card is its own claim, so without an owner the first local
//! agent (by name) advertising a skill answered for it: `aaa-helper` could squat
//! `approve-payment`. A skill now belongs to the first agent deployed with it, recorded in sled
//! so a restart (which deploys in name order) cannot hand it to someone else; a peer named by a
//! bare skill id reaches its owner only. Another agent advertising the same skill (the same
//! component deployed under a second name, say) still deploys, but is reached by name, or by
//! `agent/skill`, never by the bare id. An owner keeps its skills while it runs a version that
//! advertises them; a version that drops a skill releases it.

/// The sled tree: skill id → owning agent.
const TREE: &str = "a2a/skill-owners";

pub struct SkillOwners {
    tree: sled::Tree,
}

/// What deploying an agent did to skill ownership.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Claims {
    /// Skills it now owns (newly or already).
    pub owned: Vec<String>,
    /// Skills it advertises that another agent owns: (skill, owner).
    pub taken: Vec<(String, String)>,
}

impl SkillOwners {
    pub fn open(db: &sled::Db) -> sled::Result<Self> {
        Ok(Self {
            tree: db.open_tree(TREE)?,
        })
    }

    /// The agent that owns `skill`, if any.
    pub fn owner(&self, skill: &str) -> Option<String> {
        self.tree
            .get(skill)
            .ok()
            .flatten()
            .map(|v| String::from_utf8_lossy(&v).into_owned())
    }

    /// Records `agent` as the owner of each of `skills` nobody owns, and releases the skills it
    /// owned but no longer advertises.
    pub fn claim(&self, agent: &str, skills: &[String]) -> sled::Result<Claims> {
        let mut claims = Claims::default();
        for skill in skills {
            match self.tree.compare_and_swap(
                skill.as_bytes(),
                None as Option<&[u8]>,
                Some(agent.as_bytes()),
            )? {
                Ok(()) => claims.owned.push(skill.clone()),
                Err(current) => {
                    let owner = current
                        .current
                        .map(|v| String::from_utf8_lossy(&v).into_owned())
                        .unwrap_or_default();
                    if owner == agent {
                        claims.owned.push(skill.clone());
                    } else {
                        claims.taken.push((skill.clone(), owner));
                    }
                }
            }
        }
        for item in self.tree.iter() {
            let (skill, owner) = item?;
            if &*owner == agent.as_bytes() && !skills.iter().any(|s| s.as_bytes() == &*skill) {
                self.tree.remove(&skill)?;
            }
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skills(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn the_first_claimant_owns_a_skill_across_restarts_and_squatters_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let owners = SkillOwners::open(&db).unwrap();
        let claims = owners
            .claim("payments", &skills(&["approve-payment", "refund"]))
            .unwrap();
        assert_eq!(claims.owned, ["approve-payment", "refund"]);
        // Deployed later, alphabetically first: it does not take the skill.
        let squat = owners
            .claim("aaa-helper", &skills(&["approve-payment"]))
            .unwrap();
        assert_eq!(
            squat.taken,
            [("approve-payment".to_owned(), "payments".to_owned())]
        );
        assert_eq!(owners.owner("approve-payment").as_deref(), Some("payments"));
        // After a restart, in name order, the owner is still the owner.
        drop(owners);
        let owners = SkillOwners::open(&db).unwrap();
        owners
            .claim("aaa-helper", &skills(&["approve-payment"]))
            .unwrap();
        assert_eq!(owners.owner("approve-payment").as_deref(), Some("payments"));
        // A version that stops advertising a skill releases it.
        owners
            .claim("payments", &skills(&["approve-payment"]))
            .unwrap();
        assert_eq!(owners.owner("refund"), None);
        assert_eq!(owners.owner("approve-payment").as_deref(), Some("payments"));
    }
}
