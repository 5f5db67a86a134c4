//! `queue-bench kai URL JOBS WORKERS` | `queue-bench redis HOST:PORT DURABILITY JOBS WORKERS` |
//! `queue-bench commit-ceiling URL COMMITS`
//!
//! Durable queue throughput, printed as one JSON object:
//! - `enqueue`: JOBS single enqueues from 8 producers, each acknowledged after its commit;
//! - `drain`: JOBS pre-enqueued jobs run by a pool of WORKERS slots (claim batches of WORKERS,
//!   a no-op handler, one durable completion per job): claim → complete;
//! - `e2e`: the pool running while 8 producers enqueue JOBS: enqueue → claim → complete.
//!
//! `redis` runs the same three loops on a Redis list — LPUSH to enqueue, BRPOPLPUSH into a
//! per-worker processing list to claim, LREM from it to complete (the reliable-queue pattern) —
//! through a minimal RESP client on one connection per producer or worker.
//! `commit-ceiling` measures one-row durable commits per second from one writer (the fsync
//! bound every per-job commit on this disk pays).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use kai_core::queue::QueueName;
use kai_runtime::queue::{JobContext, JobError, JobHandler, Queue, WorkerSettings};
use kai_store::queue::{Completion, NewJob};
use serde_json::json;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The node's allocator (`kai`'s `jemalloc` feature), so the queue runs measure what it runs.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const PRODUCERS: u64 = 8;

struct Noop;

#[async_trait::async_trait]
impl JobHandler for Noop {
    async fn run(&self, ctx: JobContext) -> Result<Completion, JobError> {
        Ok(Completion::from(json!({"n": ctx.payload()["n"]})))
    }
}

async fn open(url: &str, schema: &str) -> anyhow::Result<Arc<dyn kai_store::Store>> {
    Ok(if url.starts_with("postgres") {
        kai_store::open_postgres_schema(url, schema, 16).await?
    } else {
        kai_store::open(url, 8).await?
    })
}

async fn produce(queue: &Queue, name: &QueueName, jobs: u64) -> anyhow::Result<()> {
    let per = jobs / PRODUCERS;
    let tasks: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let (queue, name) = (queue.clone(), name.clone());
            tokio::spawn(async move {
                for i in 0..per {
                    queue.enqueue(&NewJob::new(name.clone(), json!({"n": p * per + i}))).await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    Ok(())
}

async fn run_pool(
    queue: &Queue,
    name: &QueueName,
    workers: usize,
    jobs: u64,
    producers: bool,
) -> anyhow::Result<f64> {
    let tracker = TaskTracker::new();
    let cancel = CancellationToken::new();
    let settings = WorkerSettings {
        concurrency: workers,
        claim_batch: u32::try_from(workers)?,
        lease: Duration::from_secs(60),
        heartbeat_every: Duration::from_secs(20),
        poll_interval: Duration::from_millis(200),
        stop_grace: Duration::from_secs(5),
        ..WorkerSettings::new("bench", vec![name.clone()])
    };
    let started = Instant::now();
    let pool = queue.start_workers(settings, Arc::new(Noop), &tracker, cancel.clone())?;
    if producers {
        produce(queue, name, jobs).await?;
    }
    let want = jobs / PRODUCERS * PRODUCERS;
    tokio::time::timeout(
        Duration::from_secs(600),
        pool.stats().wait_until(|s| s.succeeded() >= want),
    )
    .await
    .context("the pool did not drain in 10 minutes")?;
    let secs = started.elapsed().as_secs_f64();
    cancel.cancel();
    tracker.close();
    tracker.wait().await;
    Ok(want as f64 / secs)
}

async fn kai(url: &str, jobs: u64, workers: usize) -> anyhow::Result<serde_json::Value> {
    let schema = format!("kai_bench_{}", uuid::Uuid::now_v7().simple());
    let store = open(url, &schema).await?;
    let queue = Queue::new(store.clone());
    let enq: QueueName = "bench.enqueue".parse()?;
    let started = Instant::now();
    produce(&queue, &enq, jobs).await?;
    let enqueue = (jobs / PRODUCERS * PRODUCERS) as f64 / started.elapsed().as_secs_f64();
    let drain = run_pool(&queue, &enq, workers, jobs, false).await?;
    let e2e_q: QueueName = "bench.e2e".parse()?;
    let e2e = run_pool(&queue, &e2e_q, workers, jobs, true).await?;
    store.close().await;
    if url.starts_with("postgres") {
        kai_store::drop_postgres_schema(url, &schema).await?;
    }
    Ok(json!({"backend": if url.starts_with("postgres") { "postgres" } else { "sqlite" },
        "jobs": jobs, "workers": workers, "enqueue_per_s": enqueue.round(), "drain_per_s": drain.round(), "e2e_per_s": e2e.round()}))
}

/// A minimal RESP connection: send a command, read one reply.
struct Redis {
    r: BufReader<tokio::net::tcp::OwnedReadHalf>,
    w: tokio::net::tcp::OwnedWriteHalf,
}

#[derive(Debug)]
enum Reply {
    Nil,
    Int,
    Bytes(Vec<u8>),
    Ok,
}

impl Redis {
    async fn connect(addr: &str) -> anyhow::Result<Self> {
        let s = TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        let (r, w) = s.into_split();
        Ok(Self { r: BufReader::new(r), w })
    }

    async fn cmd(&mut self, args: &[&[u8]]) -> anyhow::Result<Reply> {
        let mut buf = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            buf.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            buf.extend_from_slice(a);
            buf.extend_from_slice(b"\r\n");
        }
        self.w.write_all(&buf).await?;
        let mut line = String::new();
        self.r.read_line(&mut line).await?;
        let (kind, rest) = line.trim_end().split_at(1);
        Ok(match kind {
            "+" => Reply::Ok,
            ":" => Reply::Int,
            "$" if rest == "-1" => Reply::Nil,
            "*" if rest == "-1" => Reply::Nil,
            "$" => {
                let n: usize = rest.parse()?;
                let mut data = vec![0; n + 2];
                self.r.read_exact(&mut data).await?;
                data.truncate(n);
                Reply::Bytes(data)
            }
            "-" => bail!("redis error: {rest}"),
            other => bail!("unexpected redis reply type {other:?}"),
        })
    }
}

async fn redis_produce(addr: &str, list: &str, jobs: u64) -> anyhow::Result<()> {
    let per = jobs / PRODUCERS;
    let tasks: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let (addr, list) = (addr.to_owned(), list.to_owned());
            tokio::spawn(async move {
                let mut c = Redis::connect(&addr).await?;
                for i in 0..per {
                    let job = json!({"n": p * per + i}).to_string();
                    c.cmd(&[b"LPUSH", list.as_bytes(), job.as_bytes()]).await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    Ok(())
}

async fn redis_workers(
    addr: &str,
    list: &str,
    workers: usize,
    jobs: u64,
    producers: bool,
) -> anyhow::Result<f64> {
    let want = jobs / PRODUCERS * PRODUCERS;
    let done = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let finished = Arc::new(std::sync::OnceLock::new());
    let started = Instant::now();
    let tasks: Vec<_> = (0..workers)
        .map(|w| {
            let (addr, list, done, finished) =
                (addr.to_owned(), list.to_owned(), done.clone(), finished.clone());
            tokio::spawn(async move {
                let mut c = Redis::connect(&addr).await?;
                let processing = format!("{list}:processing:{w}");
                while done.load(std::sync::atomic::Ordering::Relaxed) < want {
                    let claimed = c
                        .cmd(&[b"BRPOPLPUSH", list.as_bytes(), processing.as_bytes(), b"1"])
                        .await?;
                    let Reply::Bytes(job) = claimed else { continue };
                    // "Run" it (parse the payload as the kai handler does), then acknowledge.
                    let v: serde_json::Value = serde_json::from_slice(&job)?;
                    std::hint::black_box(v);
                    c.cmd(&[b"LREM", processing.as_bytes(), b"1", &job]).await?;
                    if done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1 == want {
                        let _ = finished.set(Instant::now());
                    }
                }
                anyhow::Ok(())
            })
        })
        .collect();
    if producers {
        redis_produce(addr, list, jobs).await?;
    }
    for t in tasks {
        t.await??;
    }
    // Workers blocked in BRPOPLPUSH notice the end up to 1 s late: time to the last ack.
    let end = finished.get().copied().unwrap_or_else(Instant::now);
    Ok(want as f64 / end.duration_since(started).as_secs_f64())
}

async fn redis(
    addr: &str,
    durability: &str,
    jobs: u64,
    workers: usize,
) -> anyhow::Result<serde_json::Value> {
    let mut c = Redis::connect(addr).await?;
    let list = format!("kai-bench-{}", uuid::Uuid::now_v7().simple());
    let started = Instant::now();
    redis_produce(addr, &list, jobs).await?;
    let enqueue = (jobs / PRODUCERS * PRODUCERS) as f64 / started.elapsed().as_secs_f64();
    let drain = redis_workers(addr, &list, workers, jobs, false).await?;
    let e2e_list = format!("{list}-e2e");
    let e2e = redis_workers(addr, &e2e_list, workers, jobs, true).await?;
    for l in [&list, &e2e_list] {
        c.cmd(&[b"DEL", l.as_bytes()]).await?;
    }
    Ok(
        json!({"backend": "redis", "addr": addr, "durability": durability, "jobs": jobs, "workers": workers,
        "enqueue_per_s": enqueue.round(), "drain_per_s": drain.round(), "e2e_per_s": e2e.round()}),
    )
}

async fn commit_ceiling(url: &str, commits: u64) -> anyhow::Result<serde_json::Value> {
    let store = kai_store::open(url, 1).await?;
    let started = Instant::now();
    for i in 0..commits {
        store.put_meta("bench.commit", &i.to_string()).await?;
    }
    let rate = commits as f64 / started.elapsed().as_secs_f64();
    store.close().await;
    Ok(
        json!({"backend": "sqlite", "what": "one-row durable commits/s, one writer", "commits_per_s": rate.round()}),
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let out = match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        [_, "kai", url, jobs, workers] => kai(url, jobs.parse()?, workers.parse()?).await?,
        [_, "redis", addr, durability, jobs, workers] => {
            redis(addr, durability, jobs.parse()?, workers.parse()?).await?
        }
        [_, "commit-ceiling", url, commits] => commit_ceiling(url, commits.parse()?).await?,
        _ => bail!(
            "usage: queue-bench kai URL JOBS WORKERS | queue-bench redis HOST:PORT DURABILITY JOBS WORKERS | queue-bench commit-ceiling SQLITE_URL COMMITS"
        ),
    };
    println!("{out}");
    Ok(())
}
