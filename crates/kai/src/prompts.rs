//! `kai prompt list|show|edit|render|diff`: the prompt library through the running node.

use std::io::Read as _;

use anyhow::{Context as _, bail};
use serde_json::{Map, Value, json};

use crate::Ctx;
use crate::cli::PromptCommand;
use crate::output::outln;
use crate::secure::client;

fn enc(s: &str) -> String {
    kai_blob::s3::sigv4::uri_encode(s, false)
}

fn print_json(v: &Value) -> anyhow::Result<()> {
    outln!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// `NAME:TYPE[!][=DEFAULT]` → a variable declaration.
pub(crate) fn parse_var(spec: &str) -> anyhow::Result<Value> {
    let (decl, default) = match spec.split_once('=') {
        Some((d, v)) => (d, Some(v)),
        None => (spec, None),
    };
    let Some((name, kind)) = decl.split_once(':') else {
        bail!("--var {spec:?}: write NAME:TYPE, e.g. topic:string! or words:number=100");
    };
    let (kind, required) = match kind.strip_suffix('!') {
        Some(k) => (k, true),
        None => (kind, false),
    };
    let mut v = json!({"name": name.trim(), "type": kind.trim(), "required": required});
    if let Some(d) = default {
        v["default"] = serde_json::from_str(d).unwrap_or_else(|_| Value::String(d.to_owned()));
    }
    Ok(v)
}

/// `NAME=VALUE` → (name, value as JSON or string).
fn parse_value(pair: &str) -> anyhow::Result<(String, Value)> {
    let (k, v) = pair.split_once('=').with_context(|| format!("-v {pair:?}: write NAME=VALUE"))?;
    Ok((
        k.trim().to_owned(),
        serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_owned())),
    ))
}

fn read_template(file: &std::path::Path) -> anyhow::Result<String> {
    if file.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        return Ok(s);
    }
    std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))
}

/// Opens `current` in the user's editor and returns what they saved.
fn edit_in_editor(current: &str) -> anyhow::Result<String> {
    let editor = std::env::var("VISUAL")
        .or_else(|_| std::env::var("EDITOR"))
        .map_err(|_| anyhow::anyhow!("set $VISUAL or $EDITOR, or pass --file or --template"))?;
    let file = tempfile::Builder::new().suffix(".j2").tempfile()?;
    std::fs::write(file.path(), current)?;
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("kai-editor")
        .arg(file.path())
        .status()
        .with_context(|| format!("cannot run the editor {editor:?}"))?;
    if !status.success() {
        bail!("the editor exited with {status}; nothing was saved");
    }
    Ok(std::fs::read_to_string(file.path())?)
}

pub async fn run(ctx: &Ctx, cmd: PromptCommand) -> anyhow::Result<()> {
    let node = client(ctx)?;
    match cmd {
        PromptCommand::List { tag, search } => {
            let mut path = match &search {
                Some(q) => format!("/prompts/search?q={}", enc(q)),
                None => "/prompts?".to_owned(),
            };
            if let Some(t) = &tag {
                path.push_str(&format!("&tag={}", enc(t)));
            }
            let list: Vec<Value> = node.get(&path).await?;
            if ctx.json {
                return print_json(&Value::Array(list));
            }
            if list.is_empty() {
                outln!(
                    "no prompts yet; create one with `kai prompt edit NAME --create --template …`"
                );
            }
            for p in &list {
                let rating = p["rating"].as_f64().map_or("-".to_owned(), |r| format!("{r:.1}★"));
                outln!(
                    "{:<28} {:>5} uses {:>5}  {}{}",
                    p["reference"].as_str().unwrap_or(""),
                    p["usage_count"],
                    rating,
                    p["description"].as_str().unwrap_or(""),
                    tags_suffix(&p["tags"])
                );
            }
        }
        PromptCommand::Show { reference, versions } => {
            let p: Value = node.get(&format!("/prompts/{}", enc(&reference))).await?;
            let history: Option<Value> = if versions {
                Some(node.get(&format!("/prompts/{}/versions", enc(&reference))).await?)
            } else {
                None
            };
            if ctx.json {
                return print_json(
                    &json!({"prompt": p, "versions": history.map(|h| h["versions"].clone())}),
                );
            }
            outln!(
                "{}  ({})",
                p["version_reference"].as_str().unwrap_or(""),
                p["description"].as_str().unwrap_or("")
            );
            for v in p["variables"].as_array().into_iter().flatten() {
                let default = v.get("default").map(|d| format!(" = {d}")).unwrap_or_default();
                let req = if v["required"].as_bool() == Some(true) { " (required)" } else { "" };
                outln!(
                    "  {{{{ {} }}}}: {}{req}{default}",
                    v["name"].as_str().unwrap_or(""),
                    v["type"].as_str().unwrap_or("")
                );
            }
            outln!("---");
            outln!("{}", p["template"].as_str().unwrap_or(""));
            if let Some(h) = history {
                outln!("---");
                for v in h["versions"].as_array().into_iter().flatten() {
                    outln!(
                        "v{:<4} {}  {}  {}",
                        v["version"],
                        v["created_at"].as_str().unwrap_or(""),
                        v["author"].as_str().unwrap_or(""),
                        v["message"].as_str().unwrap_or("")
                    );
                }
            }
        }
        PromptCommand::Edit {
            reference,
            create,
            file,
            template,
            vars,
            description,
            tags,
            message,
        } => {
            let current = node
                .request(reqwest::Method::GET, &format!("/prompts/{}", enc(&reference)))
                .send()
                .await
                .context("cannot reach the node")?;
            let exists = current.status().is_success();
            if !exists && current.status() != reqwest::StatusCode::NOT_FOUND {
                crate::client::NodeClient::check(current).await?;
                bail!("unexpected answer from the node");
            }
            let current: Value = if exists { current.json().await? } else { Value::Null };
            let variables: Option<Vec<Value>> = (!vars.is_empty())
                .then(|| vars.iter().map(|v| parse_var(v)).collect())
                .transpose()?;
            let template = match (file, template) {
                (Some(f), _) => Some(read_template(&f)?),
                (None, Some(t)) => Some(t),
                (None, None) => Some(edit_in_editor(current["template"].as_str().unwrap_or(""))?),
            };
            let saved: Value = if exists {
                let body = json!({
                    "template": template,
                    "variables": variables,
                    "description": description,
                    "message": message,
                    "base_version": current["version"],
                });
                node.put(
                    &format!("/prompts/{}", enc(current["id"].as_str().unwrap_or(&reference))),
                    &body,
                )
                .await?
            } else if create {
                let body = json!({
                    "name": reference,
                    "template": template.unwrap_or_default(),
                    "variables": variables.unwrap_or_default(),
                    "description": description.unwrap_or_default(),
                    "tags": tags,
                });
                node.post("/prompts", &body).await?
            } else {
                bail!("there is no prompt {reference:?}; add --create to make it");
            };
            if ctx.json {
                return print_json(&saved);
            }
            outln!("saved {}", saved["version_reference"].as_str().unwrap_or(""));
        }
        PromptCommand::Render { reference, values } => {
            let mut map = Map::new();
            for pair in &values {
                let (k, v) = parse_value(pair)?;
                map.insert(k, v);
            }
            let out: Value = node
                .post(&format!("/prompts/{}/render", enc(&reference)), &json!({"variables": map}))
                .await?;
            if ctx.json {
                return print_json(&out);
            }
            outln!("{}", out["output"].as_str().unwrap_or(""));
        }
        PromptCommand::Diff { reference, from, to } => {
            let mut path = format!("/prompts/{}/diff?", enc(&reference));
            if let Some(f) = from {
                path.push_str(&format!("from={f}&"));
            }
            if let Some(t) = to {
                path.push_str(&format!("to={t}"));
            }
            let d: Value = node.get(&path).await?;
            if ctx.json {
                return print_json(&d);
            }
            outln!(
                "v{} → v{}: +{} -{} lines, similarity {:.2}",
                d["from"],
                d["to"],
                d["insertions"],
                d["deletions"],
                d["similarity"].as_f64().unwrap_or(0.0)
            );
            for (what, key) in [
                ("added", "variables_added"),
                ("removed", "variables_removed"),
                ("changed", "variables_changed"),
            ] {
                let names: Vec<&str> =
                    d[key].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
                if !names.is_empty() {
                    outln!("variables {what}: {}", names.join(", "));
                }
            }
            let unified = d["unified"].as_str().unwrap_or("");
            if unified.is_empty() {
                outln!("(the templates are identical)");
            } else {
                outln!("{}", unified.trim_end());
            }
        }
    }
    Ok(())
}

fn tags_suffix(tags: &Value) -> String {
    let t: Vec<&str> = tags.as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    if t.is_empty() { String::new() } else { format!("  [{}]", t.join(", ")) }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn variable_specs_from_the_command_line() {
        assert_eq!(
            super::parse_var("topic:string!").unwrap(),
            json!({"name": "topic", "type": "string", "required": true})
        );
        assert_eq!(
            super::parse_var("words:number=100").unwrap(),
            json!({"name": "words", "type": "number", "required": false, "default": 100})
        );
        assert_eq!(super::parse_var("tone:string=calm").unwrap()["default"], "calm");
        assert!(super::parse_var("nokind").is_err());
        assert_eq!(super::parse_value("n=3").unwrap(), ("n".into(), json!(3)));
        assert_eq!(super::parse_value("s=a b").unwrap(), ("s".into(), json!("a b")));
    }
}
