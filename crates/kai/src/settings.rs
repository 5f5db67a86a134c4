//! Builds the layered configuration from files, `KAI_*` variables and flags.

use std::path::Path;

use kai_core::config::{self, ConfigError, Layer, LoadedConfig, Problem, Source};

use crate::paths::ConfigPaths;

fn read_layer(path: &Path, source: Source, required: bool) -> Result<Option<Layer>, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Layer::from_toml(source, &text).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => Ok(None),
        Err(e) => Err(ConfigError {
            problems: vec![Problem {
                source,
                key: String::new(),
                message: format!("cannot read the file: {e}"),
            }],
        }),
    }
}

/// Reads every layer and merges them: defaults → system → environment → user → env → flags.
pub fn load(
    paths: &ConfigPaths,
    flags: &[(String, String, String)],
) -> Result<LoadedConfig, ConfigError> {
    let mut layers = Vec::new();
    layers.extend(read_layer(&paths.system, Source::SystemFile(paths.system.clone()), false)?);
    if let Some(env) = &paths.environment {
        layers.extend(read_layer(env, Source::EnvironmentFile(env.clone()), true)?);
    }
    layers.extend(read_layer(
        &paths.user,
        Source::UserFile(paths.user.clone()),
        paths.user_explicit,
    )?);
    layers.extend(config::env_layer(std::env::vars())?);
    for (flag, key, value) in flags {
        layers.push(Layer::single(Source::Flag(flag.clone()), key, config::parse_scalar(value))?);
    }
    config::load(layers)
}

/// Turns `--set k=v` and the dedicated flags into `(flag, key, value)` triples.
pub fn flag_overrides(
    set: &[String],
    listen: Option<&str>,
    log_level: Option<&str>,
) -> Result<Vec<(String, String, String)>, ConfigError> {
    let mut out = Vec::new();
    for item in set {
        let Some((k, v)) = item.split_once('=') else {
            return Err(ConfigError {
                problems: vec![Problem {
                    source: Source::Flag("--set".into()),
                    key: item.clone(),
                    message: "expected KEY=VALUE, e.g. --set server.request_timeout_secs=5".into(),
                }],
            });
        };
        out.push(("--set".to_owned(), k.trim().to_owned(), v.trim().to_owned()));
    }
    if let Some(l) = listen {
        out.push(("--listen".to_owned(), "server.listen".to_owned(), format!("{l:?}")));
    }
    if let Some(l) = log_level {
        out.push(("--log-level".to_owned(), "log.level".to_owned(), format!("{l:?}")));
    }
    Ok(out)
}
