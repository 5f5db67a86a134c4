//! `kai vault …`, `kai token …`, `kai user …`: all through the running node's API, so RBAC and
//! audit apply to the CLI exactly as to any client.

use std::io::Read as _;

use anyhow::{Context as _, bail};
use kai_server::api::{CreatedToken, SecretMeta, SecretValue, TokenInfo, User, VaultStatus};
use serde_json::json;

use crate::Ctx;
use crate::cli::{TokenCommand, UserCommand, VaultCommand};
use crate::client::NodeClient;
use crate::output::outln;

pub(crate) fn client(ctx: &Ctx) -> anyhow::Result<NodeClient> {
    NodeClient::connect(&ctx.data)?.ok_or_else(|| {
        anyhow::anyhow!(
            "no node is running on {}; start it with `kai serve`",
            ctx.data.root.display()
        )
    })
}

fn print<T: serde::Serialize>(ctx: &Ctx, v: &T, text: impl FnOnce(&T)) -> anyhow::Result<()> {
    if ctx.json {
        outln!("{}", serde_json::to_string_pretty(v)?);
    } else {
        text(v);
    }
    Ok(())
}

fn passphrase(prompt: &str, env: &str) -> anyhow::Result<String> {
    match std::env::var(env) {
        Ok(p) if !p.is_empty() => Ok(p),
        _ => Ok(rpassword::prompt_password(prompt)?),
    }
}

fn enc(name: &str) -> String {
    name.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

pub async fn vault(ctx: &Ctx, cmd: VaultCommand) -> anyhow::Result<()> {
    let c = client(ctx)?;
    match cmd {
        VaultCommand::Status => {
            let s: VaultStatus = c.get("/vault/status").await?;
            print(ctx, &s, |s| {
                outln!("vault {} (key generation {})", s.state, s.generation.unwrap_or(0))
            })
        }
        VaultCommand::Unlock { key_file } => {
            let body = match key_file {
                Some(f) => {
                    json!({"key": std::fs::read_to_string(&f).with_context(|| format!("cannot read {}", f.display()))?.trim()})
                }
                None => {
                    json!({"passphrase": passphrase("vault passphrase: ", "KAI_VAULT_PASSPHRASE")?})
                }
            };
            c.post_empty("/vault/unlock", &body).await?;
            outln!("vault unlocked");
            Ok(())
        }
        VaultCommand::Seal => {
            c.post_empty("/vault/seal", &json!({})).await?;
            outln!("vault sealed");
            Ok(())
        }
        VaultCommand::Set { name, value, ttl } => {
            let value = match value {
                Some(v) => v,
                None => {
                    let mut v = String::new();
                    std::io::stdin().read_to_string(&mut v)?;
                    v.trim_end_matches('\n').to_owned()
                }
            };
            let meta: SecretMeta = c
                .put(
                    &format!("/vault/secrets/{}", enc(&name)),
                    &json!({"value": value, "ttl_secs": ttl}),
                )
                .await?;
            print(ctx, &meta, |m| outln!("stored {} (version {})", m.name, m.version))
        }
        VaultCommand::Get { name, version } => {
            let q = version.map(|v| format!("?version={v}")).unwrap_or_default();
            let s: SecretValue = c.get(&format!("/vault/secrets/{}{q}", enc(&name))).await?;
            print(ctx, &s, |s| outln!("{}", s.value))
        }
        VaultCommand::List => {
            let list: Vec<SecretMeta> = c.get("/vault/secrets").await?;
            print(ctx, &list, |l| {
                for m in l {
                    let exp = m
                        .expires_at
                        .map(|e| format!(" (expires {})", e.format("%Y-%m-%d %H:%M")))
                        .unwrap_or_default();
                    outln!("{}  v{}{exp}", m.name, m.version);
                }
            })
        }
        VaultCommand::Rm { name } => {
            c.delete(&format!("/vault/secrets/{}", enc(&name))).await?;
            outln!("deleted {name}");
            Ok(())
        }
        VaultCommand::Rekey => {
            let p = passphrase("vault passphrase: ", "KAI_VAULT_PASSPHRASE")?;
            let key = std::fs::read_to_string(ctx.data.vault_key_file())
                .ok()
                .map(|k| k.trim().to_owned());
            let r: serde_json::Value =
                c.post("/vault/rekey", &json!({"passphrase": p, "key": key})).await?;
            print(ctx, &r, |r| outln!("vault rekeyed: key generation {}", r["generation"]))
        }
        VaultCommand::Passphrase => {
            let current = passphrase("current passphrase: ", "KAI_VAULT_PASSPHRASE")?;
            let new = passphrase("new passphrase (12+ characters): ", "KAI_VAULT_NEW_PASSPHRASE")?;
            c.post_empty("/vault/passphrase", &json!({"current": current, "new": new})).await?;
            outln!("passphrase changed");
            Ok(())
        }
    }
}

pub async fn token(ctx: &Ctx, cmd: TokenCommand) -> anyhow::Result<()> {
    let c = client(ctx)?;
    match cmd {
        TokenCommand::Create { name, role, scopes, agent, ttl } => {
            let t: CreatedToken = c.post("/tokens", &json!({"name": name, "role": role, "scopes": scopes, "agent": agent, "ttl_secs": ttl})).await?;
            if ctx.json {
                outln!("{}", serde_json::to_string_pretty(&t)?);
            } else {
                outln!("token {} ({}), shown once:", t.info.id, t.info.role);
                outln!("{}", t.token);
            }
            Ok(())
        }
        TokenCommand::List => {
            let list: Vec<TokenInfo> = c.get("/tokens").await?;
            print(ctx, &list, |l| {
                for t in l {
                    outln!(
                        "{}  {:<8} {}{}",
                        t.id,
                        t.role,
                        t.name,
                        if t.revoked { "  (revoked)" } else { "" }
                    );
                }
            })
        }
        TokenCommand::Revoke { id } => {
            c.delete(&format!("/tokens/{}", enc(&id))).await?;
            outln!("revoked {id}");
            Ok(())
        }
    }
}

pub async fn user(ctx: &Ctx, cmd: UserCommand) -> anyhow::Result<()> {
    let c = client(ctx)?;
    match cmd {
        UserCommand::Add { username, role } => {
            let password = passphrase("password (10+ characters): ", "KAI_USER_PASSWORD")?;
            if password.is_empty() {
                bail!("a password is needed");
            }
            let u: User = c
                .post("/users", &json!({"username": username, "password": password, "role": role}))
                .await?;
            print(ctx, &u, |u| outln!("created {} ({}) id {}", u.username, u.role, u.id))
        }
        UserCommand::List => {
            let list: Vec<User> = c.get("/users").await?;
            print(ctx, &list, |l| {
                for u in l {
                    outln!(
                        "{}  {:<8} {}{}",
                        u.id,
                        u.role,
                        u.username,
                        if u.disabled { "  (disabled)" } else { "" }
                    );
                }
            })
        }
    }
}

pub async fn usage(ctx: &Ctx, hours: u32) -> anyhow::Result<()> {
    let c = client(ctx)?;
    let report: serde_json::Value = c.get(&format!("/telemetry/usage?hours={hours}")).await?;
    print(ctx, &report, |r| {
        outln!(
            "{:<44} {:<16} {:>6} {:>10} {:>10} {:>10}",
            "principal",
            "persona",
            "calls",
            "prompt",
            "completion",
            "cost $"
        );
        for t in r["totals"].as_array().into_iter().flatten() {
            outln!(
                "{:<44} {:<16} {:>6} {:>10} {:>10} {:>10.4}",
                t["principal"].as_str().unwrap_or(""),
                t["persona"].as_str().unwrap_or(""),
                t["calls"],
                t["prompt_tokens"],
                t["completion_tokens"],
                t["cost_usd"].as_f64().unwrap_or(0.0)
            );
        }
    })
}
