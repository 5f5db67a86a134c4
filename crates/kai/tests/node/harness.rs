//! Starts a real node: `kai serve --listen 127.0.0.1:0` in a temp data dir with isolated
//! configuration paths, on SQLite or (with `KAI_TEST_DATABASE=postgres`) on its own
//! PostgreSQL schema.

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const KAI: &str = env!("CARGO_BIN_EXE_kai");
/// The vault passphrase and owner password every test node is initialized with.
pub const VAULT_PASSPHRASE: &str = "test vault passphrase";
pub const OWNER_PASSWORD: &str = "owner password 123";

pub fn postgres_url() -> Option<String> {
    (std::env::var("KAI_TEST_DATABASE").ok().as_deref() == Some("postgres")).then(|| {
        std::env::var("KAI_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
    })
}

/// A node's directory: data dir, config files and logs, kept across restarts.
pub struct NodeDir {
    pub tmp: tempfile::TempDir,
    /// `[storage] url = …` for PostgreSQL runs; empty on SQLite.
    pub storage: String,
    pub pg_schema: Option<String>,
}

impl NodeDir {
    pub async fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("etc")).unwrap();
        let (storage, pg_schema) = match postgres_url() {
            Some(url) => {
                let schema = format!("kai_t_{}", uuid::Uuid::now_v7().simple());
                let store = kai_store::open_postgres_schema(&url, &schema, 1).await.unwrap();
                store.close().await;
                (
                    format!("[storage]\nurl = \"{url}?options[search_path]={schema}\"\n"),
                    Some(schema),
                )
            }
            None => (String::new(), None),
        };
        Self { tmp, storage, pg_schema }
    }

    pub fn data(&self) -> PathBuf {
        self.tmp.path().join("data")
    }
    pub fn config_file(&self) -> PathBuf {
        self.tmp.path().join("config.toml")
    }
    pub fn log_file(&self) -> PathBuf {
        self.tmp.path().join("node.log")
    }

    /// Writes the user config file (storage settings are prepended for PostgreSQL runs).
    pub fn write_config(&self, toml: &str) {
        let body = if self.storage.is_empty() || toml.contains("[storage]") {
            toml.to_owned()
        } else {
            format!("{}{toml}", self.storage)
        };
        let tmp = self.tmp.path().join("config.toml.tmp");
        std::fs::write(&tmp, body).unwrap();
        std::fs::rename(&tmp, self.config_file()).unwrap();
    }

    /// A `kai` command with this directory's data dir and isolated config paths.
    pub fn kai(&self) -> Command {
        let mut cmd = Command::new(KAI);
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("KAI_")) {
            cmd.env_remove(k);
        }
        if !self.config_file().exists() {
            self.write_config("");
        }
        cmd.env("KAI_DATA_DIR", self.data())
            .env("KAI_CONFIG", self.config_file())
            .env("KAI_SYSTEM_CONFIG_DIR", self.tmp.path().join("etc"))
            .env("HOME", self.tmp.path())
            .env("KAI_TEST_INSECURE_FAST_KDF", "1")
            .env("KAI_VAULT_PASSPHRASE", VAULT_PASSPHRASE)
            .env("KAI_VAULT_KEY_FILE", "1")
            .env("KAI_OWNER_PASSWORD", OWNER_PASSWORD)
            .env("NO_COLOR", "1");
        cmd
    }

    /// Runs a command to completion.
    pub fn run(&self, args: &[&str]) -> std::process::Output {
        self.kai().args(args).output().unwrap()
    }

    pub fn token(&self) -> String {
        std::fs::read_to_string(self.data().join("admin.token")).unwrap().trim().to_owned()
    }
}

/// A running node.
pub struct Node {
    pub child: Child,
    pub addr: String,
    pub http: reqwest::Client,
    pub token: String,
}

impl Node {
    /// Starts `kai serve` and waits (up to 60 s) until it listens.
    pub fn start(dir: &NodeDir) -> Self {
        Self::start_with(dir, &[])
    }

    pub fn start_with(dir: &NodeDir, extra: &[&str]) -> Self {
        let log =
            std::fs::OpenOptions::new().create(true).append(true).open(dir.log_file()).unwrap();
        let mut child = dir
            .kai()
            .args(["--json", "serve", "--listen", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let line = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_else(|_| {
            panic!(
                "node did not start; log:\n{}",
                std::fs::read_to_string(dir.log_file()).unwrap_or_default()
            )
        });
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let addr = v["listening"].as_str().unwrap().to_owned();
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
        Self { child, addr, http, token: dir.token() }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).bearer_auth(&self.token).send().await.unwrap()
    }

    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        let resp = self.get(path).await;
        assert!(resp.status().is_success(), "GET {path}: {}", resp.status());
        resp.json().await.unwrap()
    }

    pub async fn post_json(&self, path: &str, body: serde_json::Value) -> reqwest::Response {
        self.http.post(self.url(path)).bearer_auth(&self.token).json(&body).send().await.unwrap()
    }

    pub async fn delete(&self, path: &str) -> reqwest::Response {
        self.http.delete(self.url(path)).bearer_auth(&self.token).send().await.unwrap()
    }

    /// SIGTERM, then wait for exit (up to 60 s). Returns the exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        signal(&self.child, "TERM");
        wait_exit(&mut self.child, Duration::from_secs(60))
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Node {
    /// A test that fails midway must not leave its node running.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(child.id().to_string())
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} failed");
}

pub fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(start.elapsed() < limit, "process did not exit within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `check` every 50 ms until it returns `Some`, failing after `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A connection to the node's database for tests that tamper with it directly.
pub async fn exec_sql(dir: &NodeDir, statements: &[&str]) {
    use sqlx::Executor as _;
    match (&dir.pg_schema, postgres_url()) {
        (Some(schema), Some(url)) => {
            let pool = sqlx::PgPool::connect(&format!("{url}?options[search_path]={schema}"))
                .await
                .unwrap();
            for s in statements {
                pool.execute(*s).await.unwrap();
            }
            pool.close().await;
        }
        _ => {
            let path: &Path = &dir.data().join("kai.db");
            let pool =
                sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display())).await.unwrap();
            for s in statements {
                pool.execute(*s).await.unwrap();
            }
            pool.close().await;
        }
    }
}
