//! The access table: for every route, whether it is public or which (resource, action) it
//! needs. One middleware ([`crate::auth::authorize`]) applies it to every request; a route
//! missing from the table is denied (a test checks that every route in the OpenAPI document
//! has an entry).

use axum::http::Method;
use kai_core::policy::{Action, Resource};

/// What a route requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, sealed or not.
    Public,
    /// An authenticated principal whose role allows this, on an unsealed node.
    Need(Resource, Action),
}

/// True when some method of `path` has a rule (so another method is 405, not 403).
pub fn known_path(path: &str) -> bool {
    ["GET", "POST", "PUT", "PATCH", "DELETE"]
        .iter()
        .any(|m| m.parse::<Method>().is_ok_and(|m| rule(&m, path).is_some()))
}

/// The rule for `method path` (path as the router matched it, e.g. `/users/{id}`).
pub fn rule(method: &Method, path: &str) -> Option<Access> {
    use Access::*;
    use Action::*;
    use Resource::*;
    let m = method.as_str();
    Some(match (m, path) {
        ("GET", "/health" | "/ready" | "/openapi.json" | "/vault/status") => Public,
        // The dashboard's static files (the router matches `/ui/{*path}`; OpenAPI names it
        // `/ui/{path}`). Its data calls go through the API routes below.
        ("GET", "/" | "/ui/{path}" | "/ui/{*path}") => Public,
        ("POST", "/vault/unlock" | "/auth/login" | "/auth/refresh") => Public,
        // A share link is its own credential (checked by the handler, for that artifact only).
        ("GET", "/share/{token}") => Public,
        // A webhook delivery is authenticated by its HMAC signature (checked by the handler).
        ("POST", "/webhooks/{name}") => Public,
        ("GET", "/metrics" | "/system/info") => Need(System, Read),
        ("GET", "/system/config") => Need(System, Admin),
        ("POST", "/system/identity/rotate") => Need(System, Admin),
        ("GET", "/events" | "/ws") => Need(Events, Read),
        ("POST", "/events") => Need(Events, Write),
        ("GET", "/audit/entries" | "/audit/verify") => Need(Audit, Read),
        ("POST", "/auth/logout" | "/auth/password") => Need(Account, Write),
        ("GET", "/auth/me" | "/users/preferences") => Need(Account, Read),
        ("PUT", "/users/preferences") => Need(Account, Write),
        ("GET", "/users" | "/users/{id}") => Need(Users, Read),
        ("POST", "/users") | ("PATCH" | "DELETE", "/users/{id}") => Need(Users, Write),
        ("GET", "/tokens") => Need(Tokens, Read),
        ("POST", "/tokens") | ("DELETE", "/tokens/{id}") => Need(Tokens, Write),
        ("POST", "/vault/seal") => Need(Vault, Admin),
        ("POST", "/vault/encrypt" | "/vault/decrypt") => Need(Vault, Write),
        ("POST", "/vault/passphrase" | "/vault/rekey") => Need(VaultKeys, Admin),
        ("GET", "/vault/secrets" | "/vault/secrets/{name}" | "/vault/secrets/{name}/versions") => {
            Need(Secrets, Read)
        }
        ("PUT" | "DELETE", "/vault/secrets/{name}") => Need(Secrets, Write),
        ("PUT", "/vault/secrets/{name}/policy") => Need(Secrets, Admin),
        ("GET", "/v1/models" | "/telemetry/usage") => Need(Chat, Read),
        ("POST", "/v1/chat/completions" | "/v1/embeddings") => Need(Chat, Write),
        (
            "GET",
            "/chat/threads"
            | "/chat/threads/{id}"
            | "/chat/threads/{id}/messages"
            | "/chat/threads/{id}/export",
        ) => Need(Chat, Read),
        ("POST", "/chat/threads" | "/chat/threads/{id}/messages")
        | ("PATCH" | "DELETE", "/chat/threads/{id}")
        | ("POST", "/chat/threads/{id}/messages/{message_id}/regenerate") => Need(Chat, Write),
        (
            "GET",
            "/prompts"
            | "/prompts/search"
            | "/prompts/{id}"
            | "/prompts/{id}/versions"
            | "/prompts/{id}/diff"
            | "/templates"
            | "/history",
        ) => Need(Prompts, Read),
        // Rendering uses a prompt (agents may); it is recorded in the history.
        ("POST", "/prompts/{id}/render" | "/prompts/test") => Need(Prompts, Read),
        ("POST", "/prompts" | "/prompts/{id}/rating")
        | ("PUT" | "PATCH" | "DELETE", "/prompts/{id}") => Need(Prompts, Write),
        (
            "GET",
            "/artifacts"
            | "/artifacts/search"
            | "/artifacts/{id}"
            | "/artifacts/{id}/versions"
            | "/artifacts/{id}/preview"
            | "/artifacts/{id}/shares"
            | "/artifact/{id}"
            | "/files/{id}/download"
            | "/notes"
            | "/notes/{id}",
        ) => Need(Artifacts, Read),
        ("POST", "/artifact/upload" | "/files/upload" | "/artifacts/{id}/shares" | "/notes")
        | ("PATCH" | "DELETE", "/artifacts/{id}")
        | ("DELETE", "/shares/{id}")
        | ("PUT" | "DELETE", "/notes/{id}") => Need(Artifacts, Write),
        (
            "GET",
            "/memory/search"
            | "/memories/{id}"
            | "/memories/export"
            | "/memory/graph"
            | "/memory/entities"
            | "/memory/entities/{id}",
        ) => Need(Memory, Read),
        ("POST", "/memories" | "/memories/embeddings" | "/memories/import")
        | ("PATCH" | "DELETE", "/memories/{id}")
        | ("POST", "/memory/entities" | "/memory/entities/{id}/merge" | "/memory/relations")
        | ("DELETE", "/memory/entities/{id}" | "/memory/relations/{id}") => Need(Memory, Write),
        ("GET", "/agents" | "/agent/status" | "/agents/{id}") => Need(Agents, Read),
        ("POST", "/agents" | "/agents/{id}/lifecycle") => Need(Agents, Write),
        ("POST", "/agents/{id}/messages") => Need(Tasks, Write),
        ("GET", "/tasks" | "/tasks/{id}") => Need(Tasks, Read),
        ("POST", "/agent/task" | "/planner/plan" | "/tasks/{id}/cancel" | "/tasks/{id}/retry")
        | (
            "POST",
            "/tasks/{id}/plan/approve" | "/tasks/{id}/plan/reject" | "/questions/{id}/answer",
        )
        | ("PUT", "/tasks/{id}/plan") => Need(Tasks, Write),
        ("GET", "/workflows" | "/workflows/{name}") => Need(Tasks, Read),
        ("POST", "/workflows" | "/workflows/{name}/run") => Need(Tasks, Write),
        ("GET", "/webhooks") | ("POST", "/webhooks") | ("DELETE", "/webhooks/{name}") => {
            Need(Tasks, Admin)
        }
        _ => return None,
    })
}
