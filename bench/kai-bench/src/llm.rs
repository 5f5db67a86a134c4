//! `kai-bench llm-overhead KAI_BIN REQUESTS TOKENS`: what the node adds to a streamed chat
//! completion. Starts the in-repo fake OpenAI server (in process) and a real `kai serve`
//! (release binary, SQLite, a persona routed to the fake), then streams REQUESTS completions of
//! TOKENS tokens each, one at a time, straight from the fake and through the node's
//! `/v1/chat/completions`, alternating so both see the same machine state. Prints time to first
//! token and total time per request (p50/p99) for both, and the difference per request and per
//! token, as JSON.

use std::io::BufRead as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use kai_llm::ProviderKind;
use kai_llm::fake::{Endpoint, FakeServer, Reply};
use serde_json::json;

struct Timing {
    first_token: Duration,
    total: Duration,
}

async fn stream_once(
    http: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    model: &str,
) -> anyhow::Result<Timing> {
    let started = Instant::now();
    let mut req = http.post(url).json(&json!({
        "model": model, "stream": true, "messages": [{"role": "user", "content": "count"}]
    }));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let mut resp = req.send().await?;
    if !resp.status().is_success() {
        bail!("{url} answered {}: {}", resp.status(), resp.text().await.unwrap_or_default());
    }
    let mut first = None;
    let mut seen = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        if first.is_none() {
            seen.extend_from_slice(&chunk);
            const FIRST: &[u8] = b"\"content\":\"t";
            if seen.windows(FIRST.len()).any(|w| w == FIRST) {
                first = Some(started.elapsed());
            }
        }
    }
    let total = started.elapsed();
    Ok(Timing { first_token: first.context("no token arrived")?, total })
}

fn percentile(v: &mut [Duration], p: f64) -> f64 {
    v.sort();
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i].as_secs_f64() * 1000.0
}

pub async fn overhead(kai: &str, requests: usize, tokens: usize) -> anyhow::Result<()> {
    let fake = FakeServer::start(ProviderKind::OpenAi).await?;
    fake.set_default(Endpoint::Chat, Reply::chunks((0..tokens).map(|i| format!("t{i} "))));
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[log]\nlevel = \"warn\"\n[limits]\nrequests_per_second = 100000\nburst = 100000\n\n[[providers]]\nname = \"fake\"\nkind = \"openai\"\nbase_url = \"{}\"\nchat_model = \"fake-chat\"\nmax_retries = 0\nconcurrency = 64\n\n[[personas]]\nname = \"bench\"\nproviders = [\"fake\"]\n",
            fake.base_url()
        ),
    )?;
    let mut child = Command::new(kai)
        .args(["--json", "serve", "--listen", "127.0.0.1:0"])
        .env("KAI_DATA_DIR", dir.path().join("data"))
        .env("KAI_CONFIG", &config)
        .env("KAI_SYSTEM_CONFIG_DIR", dir.path().join("etc"))
        .env("HOME", dir.path())
        .env("KAI_VAULT_PASSPHRASE", "bench passphrase")
        .env("KAI_VAULT_KEY_FILE", "1")
        .env("KAI_OWNER_PASSWORD", "bench owner password")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot run {kai}"))?;
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().context("no stdout")?).read_line(&mut line)?;
    let addr: serde_json::Value = serde_json::from_str(&line).context("kai serve did not start")?;
    let addr = addr["listening"].as_str().context("no address")?.to_owned();
    let token = std::fs::read_to_string(dir.path().join("data/admin.token"))?.trim().to_owned();

    let http = reqwest::Client::builder().pool_max_idle_per_host(4).build()?;
    let direct_url = format!("{}/chat/completions", fake.base_url());
    let node_url = format!("http://{addr}/v1/chat/completions");
    // Warm both paths (connections, provider construction, SQLite pages).
    for _ in 0..20 {
        stream_once(&http, &direct_url, None, "fake-chat").await?;
        stream_once(&http, &node_url, Some(&token), "bench").await?;
    }
    let (mut d_first, mut d_total, mut n_first, mut n_total) = (vec![], vec![], vec![], vec![]);
    for _ in 0..requests {
        let d = stream_once(&http, &direct_url, None, "fake-chat").await?;
        let n = stream_once(&http, &node_url, Some(&token), "bench").await?;
        d_first.push(d.first_token);
        d_total.push(d.total);
        n_first.push(n.first_token);
        n_total.push(n.total);
    }
    let _ = child.kill();
    let _ = child.wait();
    let (df50, df99) = (percentile(&mut d_first, 0.5), percentile(&mut d_first, 0.99));
    let (nf50, nf99) = (percentile(&mut n_first, 0.5), percentile(&mut n_first, 0.99));
    let (dt50, nt50) = (percentile(&mut d_total, 0.5), percentile(&mut n_total, 0.5));
    #[allow(clippy::cast_precision_loss)]
    let per_token_us = ((nt50 - nf50) - (dt50 - df50)) * 1000.0 / tokens.max(1) as f64;
    println!(
        "{}",
        json!({
            "requests": requests, "tokens": tokens,
            "direct_ms": {"first_token_p50": df50, "first_token_p99": df99, "total_p50": dt50},
            "node_ms": {"first_token_p50": nf50, "first_token_p99": nf99, "total_p50": nt50},
            "added_first_token_ms_p50": nf50 - df50,
            "added_first_token_ms_p99": nf99 - df99,
            "added_per_token_us": per_token_us,
        })
    );
    Ok(())
}
