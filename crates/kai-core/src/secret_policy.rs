//! Who may read or use a vault secret. `read` returns the value to the caller; `use` lets the
//! host inject it into an outgoing request on the caller's behalf without showing it.
//! Default deny; owners and admins may always read and use (they administer the vault).

use serde::{Deserialize, Serialize};

use crate::policy::Role;

/// A caller, as far as secret policies care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    User {
        id: String,
        role: Role,
    },
    /// An agent principal (`kClass:name`).
    Agent {
        id: String,
    },
}

/// One list of grants.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Grant {
    pub roles: Vec<Role>,
    pub users: Vec<String>,
    pub agents: Vec<String>,
}

impl Grant {
    fn allows(&self, s: &Subject) -> bool {
        match s {
            Subject::User { id, role } => self.users.contains(id) || self.roles.contains(role),
            Subject::Agent { id } => self.agents.contains(id),
        }
    }
}

/// The policy of one secret.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecretPolicy {
    pub read: Grant,
    #[serde(rename = "use")]
    pub use_: Grant,
}

/// What a caller wants to do with a secret's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretOp {
    Read,
    Use,
}

impl SecretPolicy {
    /// Default deny; owner and admin always; `read` implies `use`.
    pub fn allows(&self, subject: &Subject, op: SecretOp) -> bool {
        if let Subject::User { role: Role::Owner | Role::Admin, .. } = subject {
            return true;
        }
        match op {
            SecretOp::Read => self.read.allows(subject),
            SecretOp::Use => self.read.allows(subject) || self.use_.allows(subject),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn agent(id: &str) -> Subject {
        Subject::Agent { id: id.into() }
    }

    #[test]
    fn agents_see_only_their_own_grants() {
        let p = SecretPolicy {
            use_: Grant { agents: vec!["kBridge:a".into()], ..Default::default() },
            ..Default::default()
        };
        assert!(p.allows(&agent("kBridge:a"), SecretOp::Use));
        assert!(!p.allows(&agent("kBridge:a"), SecretOp::Read), "use does not imply read");
        assert!(!p.allows(&agent("kBridge:b"), SecretOp::Use), "another agent's secret");
        let member = Subject::User { id: "u1".into(), role: Role::Member };
        assert!(!p.allows(&member, SecretOp::Use));
        let owner = Subject::User { id: "o".into(), role: Role::Owner };
        assert!(p.allows(&owner, SecretOp::Read));
    }

    fn role() -> impl Strategy<Value = Role> {
        prop_oneof![
            Just(Role::Owner),
            Just(Role::Admin),
            Just(Role::Member),
            Just(Role::Viewer),
            Just(Role::Agent)
        ]
    }

    proptest! {
        /// Against a reference model: default deny, admins always, read implies use, and a
        /// grant to one identity never leaks to another.
        #[test]
        fn matches_reference(read_users in proptest::collection::vec(0u8..4, 0..3), use_agents in proptest::collection::vec(0u8..4, 0..3),
                             read_roles in proptest::collection::vec(role(), 0..3), who in 0u8..4, is_agent: bool, r in role(), op_read: bool) {
            let p = SecretPolicy {
                read: Grant { users: read_users.iter().map(|u| format!("u{u}")).collect(), roles: read_roles.clone(), agents: vec![] },
                use_: Grant { agents: use_agents.iter().map(|a| format!("kBridge:a{a}")).collect(), ..Default::default() },
            };
            let subject = if is_agent { Subject::Agent { id: format!("kBridge:a{who}") } } else { Subject::User { id: format!("u{who}"), role: r } };
            let op = if op_read { SecretOp::Read } else { SecretOp::Use };
            let expected = match &subject {
                Subject::User { role: Role::Owner | Role::Admin, .. } => true,
                Subject::User { role, .. } => read_users.contains(&who) || read_roles.contains(role),
                Subject::Agent { .. } => !op_read && use_agents.contains(&who),
            };
            prop_assert_eq!(p.allows(&subject, op), expected);
        }
    }
}
