//! Roles, resources and the permission check every route goes through.
//!
//! Roles form a hierarchy, owner > admin > member > viewer: a role may do everything the roles
//! below it may do. `agent` principals sit beside it with a fixed, small grant (events, and
//! secrets subject to each secret's own policy). The table is [`Role::allows`].

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

/// What a route touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resource {
    /// Node information, metrics, configuration, identity.
    System,
    Events,
    Audit,
    /// The vault as a whole: status, seal, encrypt/decrypt under named keys.
    Vault,
    /// The vault's data keys: passphrase change and rekey (owner only).
    VaultKeys,
    Secrets,
    Users,
    /// API tokens.
    Tokens,
    /// The caller's own account: profile, preferences, password, logout.
    Account,
    /// Language models: listing personas, chat completions, embeddings.
    Chat,
    /// The prompt library: templates, versions, renders.
    Prompts,
    /// Stored files (artifacts), their share links and notes.
    Artifacts,
    /// The caller's own memories and memory graph.
    Memory,
    /// The agent registry: definitions, lifecycle, messages.
    Agents,
    /// Tasks (goals, plans, steps, questions), saved workflows, triggers and webhooks.
    Tasks,
}

impl Resource {
    /// The name used in token scopes (`events:write`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::System => "system",
            Self::Events => "events",
            Self::Audit => "audit",
            Self::Vault => "vault",
            Self::VaultKeys => "vault_keys",
            Self::Secrets => "secrets",
            Self::Users => "users",
            Self::Tokens => "tokens",
            Self::Account => "account",
            Self::Chat => "chat",
            Self::Prompts => "prompts",
            Self::Artifacts => "artifacts",
            Self::Memory => "memory",
            Self::Agents => "agents",
            Self::Tasks => "tasks",
        }
    }
}

impl Action {
    /// The name used in token scopes.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Admin => "admin",
        }
    }
}

impl Role {
    /// The permission table: may this role perform `action` on `resource`?
    pub fn allows(self, resource: Resource, action: Action) -> bool {
        use {Action::*, Resource::*};
        if self == Self::Agent {
            return matches!(
                (resource, action),
                (Events, Read | Write)
                    | (Secrets, Read)
                    | (Account, Read)
                    | (Chat, Read | Write)
                    | (Prompts, Read)
                    | (Artifacts, Read | Write)
                    | (Memory, Read | Write)
                    | (Agents, Read)
                    | (Tasks, Read | Write)
            );
        }
        let needed = match (resource, action) {
            (System, Read)
            | (Events, Read)
            | (Vault, Read)
            | (Account, Read | Write)
            | (Chat, Read)
            | (Prompts, Read)
            | (Artifacts, Read)
            | (Memory, Read)
            | (Agents, Read)
            | (Tasks, Read) => Self::Viewer,
            (Events, Write)
            | (Secrets, Read | Write)
            | (Vault, Write)
            | (Tokens, Read | Write)
            | (Chat, Write)
            | (Prompts, Write)
            | (Artifacts, Write)
            | (Memory, Write)
            | (Tasks, Write) => Self::Member,
            (System, Write | Admin)
            | (Audit, _)
            | (Users, _)
            | (Tokens, Admin)
            | (Secrets, Admin)
            | (Vault, Admin)
            | (Prompts, Admin)
            | (Artifacts, Admin)
            | (Agents, Write | Admin)
            | (Tasks, Admin) => Self::Admin,
            (VaultKeys, _)
            | (Events, Admin)
            | (Account, Admin)
            | (Chat, Admin)
            | (Memory, Admin) => Self::Owner,
        };
        self.rank() >= needed.rank()
    }

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
    fn resource_table() {
        use Action::*;
        use Resource::*;
        assert!(
            Role::Viewer.allows(Events, Read) && !Role::Viewer.allows(Events, Write),
            "a viewer cannot write"
        );
        assert!(Role::Member.allows(Secrets, Write) && !Role::Member.allows(Users, Read));
        assert!(Role::Admin.allows(Users, Write) && !Role::Admin.allows(VaultKeys, Admin));
        assert!(Role::Owner.allows(VaultKeys, Admin));
        assert!(Role::Agent.allows(Events, Write) && Role::Agent.allows(Secrets, Read));
        assert!(
            !Role::Agent.allows(System, Read)
                && !Role::Agent.allows(Secrets, Write)
                && !Role::Agent.allows(Audit, Read)
        );
        assert!(Role::Agent.allows(Prompts, Read) && !Role::Agent.allows(Prompts, Write));
        assert!(Role::Agent.allows(Artifacts, Write) && !Role::Agent.allows(Artifacts, Admin));
        assert!(Role::Viewer.allows(Artifacts, Read) && !Role::Viewer.allows(Artifacts, Write));
        // Inheritance: whatever a role may do, every higher role may do too.
        let roles = [Role::Viewer, Role::Member, Role::Admin, Role::Owner];
        let all = [
            System, Events, Audit, Vault, VaultKeys, Secrets, Users, Tokens, Account, Chat,
            Prompts, Artifacts, Memory,
        ];
        for r in all {
            for a in [Read, Write, Admin] {
                for w in roles.windows(2) {
                    assert!(!w[0].allows(r, a) || w[1].allows(r, a), "{:?} {r:?} {a:?}", w[1]);
                }
            }
        }
    }

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
