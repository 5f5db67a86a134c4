//! `kai-bench llm-overhead KAI_BIN REQUESTS TOKENS`: what the node adds to a streamed chat
//! completion. Starts the in-repo fake OpenAI server (in process) and a real `kai serve`
//! (release binary, SQLite, a persona routed to the fake), then streams REQUESTS completions of
//! TOKENS tokens each, one at a time, straight from the fake and through the node's
//! `/v1/chat/completions`, alternating so both see the same machine state; then again with 2 ×
//! TOKENS tokens. Prints time to first token and total time per request (p50/p99) for both, the
//! difference per request, and per token two ways: everything after the first token divided by
//! TOKENS (the formula of earlier runs), and the slope between the two rounds (fixed costs after
//! the first token cancel out), as JSON.

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

/// p50/p99 of one path, in ms.
struct Path {
    first: f64,
    first99: f64,
    total: f64,
}

struct Round {
    direct: Path,
    node: Path,
}

/// `requests` streams on each path, alternating so both see the same machine state.
async fn measure(
    http: &reqwest::Client,
    direct_url: &str,
    node_url: &str,
    token: &str,
    requests: usize,
) -> anyhow::Result<Round> {
    let (mut d_first, mut d_total, mut n_first, mut n_total) = (vec![], vec![], vec![], vec![]);
    for _ in 0..requests {
        let d = stream_once(http, direct_url, None, "fake-chat").await?;
        let n = stream_once(http, node_url, Some(token), "bench").await?;
        d_first.push(d.first_token);
        d_total.push(d.total);
        n_first.push(n.first_token);
        n_total.push(n.total);
    }
    Ok(Round {
        direct: Path {
            first: percentile(&mut d_first, 0.5),
            first99: percentile(&mut d_first, 0.99),
            total: percentile(&mut d_total, 0.5),
        },
        node: Path {
            first: percentile(&mut n_first, 0.5),
            first99: percentile(&mut n_first, 0.99),
            total: percentile(&mut n_total, 0.5),
        },
    })
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
    // Round 1 streams TOKENS tokens, round 2 twice as many: the per-token cost is the slope
    // between them, so a fixed cost paid after the first token (the audit entry a streamed
    // reply waits for before it finishes) is not counted as a per-token one.
    let one = measure(&http, &direct_url, &node_url, &token, requests).await?;
    fake.set_default(Endpoint::Chat, Reply::chunks((0..tokens * 2).map(|i| format!("t{i} "))));
    for _ in 0..5 {
        stream_once(&http, &node_url, Some(&token), "bench").await?;
    }
    let two = measure(&http, &direct_url, &node_url, &token, requests).await?;
    let _ = child.kill();
    let _ = child.wait();
    #[allow(clippy::cast_precision_loss)]
    let tokens_f = tokens.max(1) as f64;
    // The formula of earlier runs, kept for comparison: everything after the first token.
    let per_token_us = ((one.node.total - one.node.first) - (one.direct.total - one.direct.first))
        * 1000.0
        / tokens_f;
    let slope_us = ((two.node.total - two.direct.total) - (one.node.total - one.direct.total))
        * 1000.0
        / tokens_f;
    println!(
        "{}",
        json!({
            "requests": requests, "tokens": tokens,
            "direct_ms": {"first_token_p50": one.direct.first, "first_token_p99": one.direct.first99, "total_p50": one.direct.total},
            "node_ms": {"first_token_p50": one.node.first, "first_token_p99": one.node.first99, "total_p50": one.node.total},
            "direct_ms_2x": {"total_p50": two.direct.total},
            "node_ms_2x": {"total_p50": two.node.total},
            "added_first_token_ms_p50": one.node.first - one.direct.first,
            "added_first_token_ms_p99": one.node.first99 - one.direct.first99,
            "added_total_ms_p50": one.node.total - one.direct.total,
            "added_per_token_us": per_token_us,
            "added_per_token_us_slope": slope_us,
        })
    );
    Ok(())
}
