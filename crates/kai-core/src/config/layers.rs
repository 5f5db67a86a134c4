//! Layered deep merge with provenance, and the errors that name the layer at fault.
//!
//! Merge rules: tables merge key by key, recursively; an array whose elements are all tables
//! with a string `name` merges element-wise by that name (so a user file can change one
//! `[[providers]]` entry); any other value, including any other array, is replaced whole.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::Serialize;
use toml::{Table, Value};

use super::schema::Config;

/// Where a configuration value came from, in precedence order (lowest first).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(tag = "kind", content = "name", rename_all = "snake_case")]
pub enum Source {
    Default,
    SystemFile(PathBuf),
    EnvironmentFile(PathBuf),
    UserFile(PathBuf),
    EnvVar(String),
    Flag(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Default => f.write_str("built-in defaults"),
            Self::SystemFile(p) => write!(f, "system file {}", p.display()),
            Self::EnvironmentFile(p) => write!(f, "environment file {}", p.display()),
            Self::UserFile(p) => write!(f, "user file {}", p.display()),
            Self::EnvVar(v) => write!(f, "environment variable {v}"),
            Self::Flag(flag) => write!(f, "command-line flag {flag}"),
        }
    }
}

/// One layer: a TOML table and where it came from.
#[derive(Debug, Clone)]
pub struct Layer {
    pub source: Source,
    pub table: Table,
}

/// One thing wrong with the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub source: Source,
    /// Dotted key, e.g. `server.listen`; empty for a whole-file problem such as a syntax error.
    pub key: String,
    pub message: String,
}

/// Every problem found; the node refuses to start while there is one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigError {
    pub problems: Vec<Problem>,
}

impl ConfigError {
    fn one(source: Source, key: impl Into<String>, message: impl Into<String>) -> Self {
        Self { problems: vec![Problem { source, key: key.into(), message: message.into() }] }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "invalid configuration ({} problem{}):",
            self.problems.len(),
            if self.problems.len() == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            if p.key.is_empty() {
                writeln!(f, "  - {}: {}", p.source, p.message)?;
            } else {
                writeln!(f, "  - {}: key `{}`: {}", p.source, p.key, p.message)?;
            }
        }
        write!(f, "fix the named key (see `kai config show` for the current values) and try again")
    }
}

impl std::error::Error for ConfigError {}

impl Layer {
    /// Parses a TOML document; a syntax error names the file and position.
    pub fn from_toml(source: Source, text: &str) -> Result<Self, ConfigError> {
        match text.parse::<Table>() {
            Ok(table) => Ok(Self { source, table }),
            Err(e) => Err(ConfigError::one(
                source,
                "",
                format!("not valid TOML: {}", e.to_string().trim()),
            )),
        }
    }

    /// A layer setting one dotted key, e.g. from `--set server.listen=…` or an env var.
    pub fn single(source: Source, dotted_key: &str, value: Value) -> Result<Self, ConfigError> {
        let parts: Vec<&str> = dotted_key.split('.').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(ConfigError::one(
                source,
                dotted_key,
                "not a key; use dotted names such as server.listen",
            ));
        }
        let mut value = value;
        for part in parts.iter().skip(1).rev() {
            let mut t = Table::new();
            t.insert((*part).to_owned(), value);
            value = Value::Table(t);
        }
        let mut table = Table::new();
        table.insert(parts[0].to_owned(), value);
        Ok(Self { source, table })
    }
}

/// Parses a value given as text (env var, `--set`): a TOML number, boolean or array if it
/// reads as one, otherwise the text itself as a string.
pub fn parse_scalar(raw: &str) -> Value {
    match format!("v = {raw}").parse::<Table>() {
        Ok(mut t) => t.remove("v").unwrap_or_else(|| Value::String(raw.to_owned())),
        Err(_) => Value::String(raw.to_owned()),
    }
}

/// Variables that start with `KAI_` but are not configuration keys.
const NOT_CONFIG: &[&str] =
    &["KAI_ENV", "KAI_CONFIG", "KAI_DATA_DIR", "KAI_SYSTEM_CONFIG_DIR", "KAI_TOKEN", "KAI_URL"];
const NOT_CONFIG_PREFIXES: &[&str] = &["KAI_VAULT_", "KAI_OWNER_", "KAI_TEST_", "KAI_BENCH_"];

/// Turns `KAI_SECTION__KEY=value` variables into layers (`__` separates levels, so
/// `KAI_SERVER__REQUEST_TIMEOUT_SECS=5` sets `server.request_timeout_secs`).
pub fn env_layer(
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<Vec<Layer>, ConfigError> {
    let mut vars: Vec<_> = vars
        .into_iter()
        .filter(|(k, _)| k.starts_with("KAI_"))
        .filter(|(k, _)| {
            !NOT_CONFIG.contains(&k.as_str())
                && !NOT_CONFIG_PREFIXES.iter().any(|p| k.starts_with(p))
        })
        .collect();
    vars.sort();
    vars.into_iter()
        .map(|(name, raw)| {
            let key = name["KAI_".len()..].to_ascii_lowercase().replace("__", ".");
            Layer::single(Source::EnvVar(name), &key, parse_scalar(&raw))
        })
        .collect()
}

/// The merged, validated configuration and where each key came from.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub config: Config,
    /// Dotted key → the layer that set it last.
    pub provenance: BTreeMap<String, Source>,
}

impl LoadedConfig {
    /// The layer a key (or its nearest set ancestor) came from.
    pub fn source_of(&self, key: &str) -> Source {
        source_of(&self.provenance, key)
    }
}

fn source_of(provenance: &BTreeMap<String, Source>, key: &str) -> Source {
    let mut k = key;
    loop {
        if let Some(s) = provenance.get(k) {
            return s.clone();
        }
        match k.rfind('.') {
            Some(i) => k = &k[..i],
            None => return Source::Default,
        }
    }
}

/// Merges `layers` over the built-in defaults and validates the result.
pub fn load(layers: Vec<Layer>) -> Result<LoadedConfig, ConfigError> {
    let defaults = match Value::try_from(Config::default()) {
        Ok(Value::Table(t)) => t,
        _ => Table::new(),
    };
    let mut provenance = BTreeMap::new();
    let mut merged = Table::new();
    merge_table(&mut merged, defaults, &Source::Default, "", &mut provenance);
    for layer in layers {
        merge_table(&mut merged, layer.table, &layer.source, "", &mut provenance);
    }
    let merged = Value::Table(merged);
    let config: Config = match serde_path_to_error::deserialize(merged.clone()) {
        Ok(c) => c,
        Err(e) => {
            let key = e.path().to_string();
            let key = if key == "." { String::new() } else { named_path(&merged, &key) };
            let message = e.into_inner().to_string();
            return Err(ConfigError::one(source_of(&provenance, &key), key, message));
        }
    };
    let problems: Vec<Problem> = config
        .validate()
        .into_iter()
        .map(|f| Problem {
            source: source_of(&provenance, f.key),
            key: f.key.to_owned(),
            message: f.message,
        })
        .collect();
    if problems.is_empty() {
        Ok(LoadedConfig { config, provenance })
    } else {
        Err(ConfigError { problems })
    }
}

/// Rewrites list indices in an error path into the names provenance uses:
/// `personas[1].bogus` → `personas[terse].bogus` (when item 1 is named `terse`).
fn named_path(root: &Value, path: &str) -> String {
    let mut out = Vec::new();
    let mut at = Some(root);
    for segment in path.split('.') {
        let (key, index) = match segment.split_once('[') {
            Some((k, rest)) => (k, rest.strip_suffix(']').and_then(|i| i.parse::<usize>().ok())),
            None => (segment, None),
        };
        at = at.and_then(|v| v.get(key));
        match index {
            Some(i) => {
                at = at.and_then(|v| v.get(i));
                match at.and_then(name_of) {
                    Some(name) => out.push(format!("{key}[{name}]")),
                    None => out.push(segment.to_owned()),
                }
            }
            None => out.push(segment.to_owned()),
        }
    }
    out.join(".")
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() { key.to_owned() } else { format!("{prefix}.{key}") }
}

fn mark(value: &Value, source: &Source, path: &str, provenance: &mut BTreeMap<String, Source>) {
    provenance.retain(|k, _| {
        !(k.starts_with(path)
            && (k[path.len()..].starts_with('.') || k[path.len()..].starts_with('[')))
    });
    provenance.insert(path.to_owned(), source.clone());
    match value {
        Value::Table(t) => {
            for (k, v) in t {
                mark(v, source, &join(path, k), provenance);
            }
        }
        Value::Array(items) if is_named_list(items) => {
            for item in items {
                mark(
                    item,
                    source,
                    &format!("{path}[{}]", name_of(item).unwrap_or_default()),
                    provenance,
                );
            }
        }
        _ => {}
    }
}

fn merge_table(
    base: &mut Table,
    overlay: Table,
    source: &Source,
    prefix: &str,
    prov: &mut BTreeMap<String, Source>,
) {
    for (key, value) in overlay {
        let path = join(prefix, &key);
        match (base.get_mut(&key), value) {
            (Some(Value::Table(b)), Value::Table(o)) => merge_table(b, o, source, &path, prov),
            (Some(Value::Array(b)), Value::Array(o)) if is_named_list(b) && is_named_list(&o) => {
                merge_named_list(b, o, source, &path, prov);
            }
            (_, value) => {
                mark(&value, source, &path, prov);
                base.insert(key, value);
            }
        }
    }
}

fn name_of(v: &Value) -> Option<&str> {
    v.as_table().and_then(|t| t.get("name")).and_then(Value::as_str)
}

fn is_named_list(items: &[Value]) -> bool {
    items.iter().all(|v| name_of(v).is_some())
}

fn merge_named_list(
    base: &mut Vec<Value>,
    overlay: Vec<Value>,
    source: &Source,
    path: &str,
    prov: &mut BTreeMap<String, Source>,
) {
    for item in overlay {
        let name = name_of(&item).unwrap_or_default().to_owned();
        let pos = base.iter().position(|b| name_of(b) == Some(name.as_str()));
        let item_path = format!("{path}[{name}]");
        match (pos, item) {
            (Some(i), Value::Table(o)) => {
                if let Value::Table(b) = &mut base[i] {
                    merge_table(b, o, source, &item_path, prov);
                }
            }
            (_, item) => {
                mark(&item, source, &item_path, prov);
                base.push(item);
            }
        }
    }
}

/// Merges arbitrary tables, for tests of the merge rules.
#[cfg(test)]
fn merge_tables_for_test(layers: Vec<(Source, Table)>) -> (Table, BTreeMap<String, Source>) {
    let mut merged = Table::new();
    let mut prov = BTreeMap::new();
    for (s, t) in layers {
        merge_table(&mut merged, t, &s, "", &mut prov);
    }
    (merged, prov)
}

#[cfg(test)]
mod tests;
