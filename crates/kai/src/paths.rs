//! Where things live: the data directory (XDG), configuration files, and the files inside the
//! data directory. Only the binary resolves these.

use std::path::{Path, PathBuf};

/// Files inside a data directory.
#[derive(Debug, Clone)]
pub struct DataDir {
    pub root: PathBuf,
}

impl DataDir {
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    /// `--data-dir`/`KAI_DATA_DIR` if given, else `$XDG_DATA_HOME/kai` (~/.local/share/kai).
    pub fn resolve(flag: Option<&Path>) -> anyhow::Result<Self> {
        if let Some(p) = flag {
            return Ok(Self::new(p.to_owned()));
        }
        let dirs = directories::ProjectDirs::from("", "", "kai")
            .ok_or_else(|| anyhow::anyhow!("cannot find a home directory; pass --data-dir"))?;
        Ok(Self::new(dirs.data_dir().to_owned()))
    }

    pub fn db_url(&self) -> String {
        format!("sqlite://{}", self.root.join("kai.db").display())
    }
    pub fn identity_dir(&self) -> PathBuf {
        self.root.join("identity")
    }
    pub fn genesis_file(&self) -> PathBuf {
        self.identity_dir().join("genesis.did")
    }
    pub fn witness_file(&self) -> PathBuf {
        self.root.join("audit").join("checkpoint.json")
    }
    pub fn admin_token_file(&self) -> PathBuf {
        self.root.join("admin.token")
    }
    pub fn vault_key_file(&self) -> PathBuf {
        self.root.join("vault.key")
    }
    pub fn run_file(&self) -> PathBuf {
        self.root.join("run").join("node.json")
    }
    /// Artifact contents (`objects/`, on the fs backend) and upload staging (`tmp/`).
    pub fn artifacts_dir(&self) -> PathBuf {
        self.root.join("artifacts")
    }
    /// Owner-defined agent files (`*.yaml`, `*.toml`, `*.json`), registered at start.
    pub fn agents_dir(&self) -> PathBuf {
        self.root.join("agents")
    }
    /// The agents' workspaces (the `files` and `shell` tools are confined to one each).
    pub fn workspaces_dir(&self) -> PathBuf {
        self.root.join("workspaces")
    }
    pub fn lock_file(&self) -> PathBuf {
        self.root.join("kai.lock")
    }
    /// True once `kai init` finished (the genesis DID is written last).
    pub fn is_initialized(&self) -> bool {
        self.genesis_file().exists()
    }
}

/// Where the configuration layers are read from.
#[derive(Debug, Clone)]
pub struct ConfigPaths {
    pub system: PathBuf,
    pub environment: Option<PathBuf>,
    pub user: PathBuf,
    /// True when the user file was named explicitly (then it must exist).
    pub user_explicit: bool,
}

impl ConfigPaths {
    pub fn resolve(user_flag: Option<&Path>, environment: Option<&str>) -> Self {
        let system_dir = std::env::var_os("KAI_SYSTEM_CONFIG_DIR")
            .map_or_else(|| PathBuf::from("/etc/kai"), PathBuf::from);
        let user = match user_flag {
            Some(p) => p.to_owned(),
            None => directories::ProjectDirs::from("", "", "kai").map_or_else(
                || PathBuf::from("config.toml"),
                |d| d.config_dir().join("config.toml"),
            ),
        };
        Self {
            system: system_dir.join("config.toml"),
            environment: environment.map(|e| system_dir.join(format!("config.{e}.toml"))),
            user,
            user_explicit: user_flag.is_some(),
        }
    }

    /// The files a hot reload watches.
    pub fn watched(&self) -> Vec<PathBuf> {
        let mut v = vec![self.system.clone(), self.user.clone()];
        v.extend(self.environment.clone());
        v
    }
}
