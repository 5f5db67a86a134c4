//! Roles and the permission check every route goes through.
//!
//! Roles form a hierarchy, owner > admin > member > viewer; `agent` principals sit beside it
//! and get only what their agent definition grants (none of the system routes). A role may do
//! everything the roles below it may do.

use serde::{Deserialize, Serialize};

/// The role of a principal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Owner,
    Admin,
    Member,
    Viewer,
    Agent,
}

/// What a request wants to do with a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Look at it.
    Read,
    /// Change it.
    Write,
    /// Change how the node itself works (identity, config, users).
    Admin,
}

impl Role {
    fn rank(self) -> u8 {
        match self {
            Self::Owner => 4,
            Self::Admin => 3,
            Self::Member => 2,
            Self::Viewer => 1,
            Self::Agent => 0,
        }
    }

    /// True when this role may perform `action` on system resources.
    pub fn permits(self, action: Action) -> bool {
        let needed = match action {
            Action::Read => Self::Viewer,
            Action::Write => Self::Member,
            Action::Admin => Self::Admin,
        };
        self.rank() >= needed.rank()
    }

    /// The role as text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Admin => "admin",
            Self::Member => "member",
            Self::Viewer => "viewer",
            Self::Agent => "agent",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "owner" => Ok(Self::Owner),
            "admin" => Ok(Self::Admin),
            "member" => Ok(Self::Member),
            "viewer" => Ok(Self::Viewer),
            "agent" => Ok(Self::Agent),
            other => {
                Err(format!("unknown role {other:?}; allowed: owner, admin, member, viewer, agent"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hierarchy_table() {
        use Action::*;
        let table = [
            (Role::Owner, [true, true, true]),
            (Role::Admin, [true, true, true]),
            (Role::Member, [true, true, false]),
            (Role::Viewer, [true, false, false]),
            (Role::Agent, [false, false, false]),
        ];
        for (role, expect) in table {
            assert_eq!(
                [role.permits(Read), role.permits(Write), role.permits(Admin)],
                expect,
                "{role:?}"
            );
        }
    }
}
