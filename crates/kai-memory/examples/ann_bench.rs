//! The Rust side of `bench/ann/compare.sh` (the ANN benchmark of issue 6).
//!
//! ```text
//! ann_bench gen   DIR N QUERIES DIM CLUSTERS NOISE   # base.f32, queries.f32 (raw little-endian), gt.u32 (top-10 rows)
//! ann_bench build DIR STORAGE M EFC INDEX_FILE       # builds on the rayon pool, saves; prints JSON
//! ann_bench query DIR STORAGE INDEX_FILE EF[,EF…]    # loads, then runs the queries on this thread; prints JSON
//! ```
//! STORAGE is `f32`, `int8` (originals in memory) or `int8file` (originals read from the file).
//! Run `query` under `taskset -c 0` for the one-core numbers.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use kai_memory::exact::ground_truth;
use kai_memory::synthetic::Clustered;
use kai_memory::{HnswIndex, HnswParams, SearchParams, Storage};
use serde_json::json;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| {
        args.get(i).cloned().ok_or_else(|| format!("missing argument {i}; see the module doc"))
    };
    match arg(0)?.as_str() {
        "gen" => generate(
            Path::new(&arg(1)?),
            arg(2)?.parse()?,
            arg(3)?.parse()?,
            arg(4)?.parse()?,
            arg(5)?.parse()?,
            arg(6)?.parse()?,
        ),
        "build" => build(
            Path::new(&arg(1)?),
            &arg(2)?,
            arg(3)?.parse()?,
            arg(4)?.parse()?,
            Path::new(&arg(5)?),
        ),
        "query" => query(Path::new(&arg(1)?), &arg(2)?, Path::new(&arg(3)?), &arg(4)?),
        other => Err(format!("unknown command {other}").into()),
    }
}

fn storage(name: &str) -> Res<Storage> {
    Ok(match name {
        "f32" => Storage::F32,
        "int8" => Storage::Int8,
        "int8file" => Storage::Int8FileRerank,
        _ => return Err(format!("unknown storage {name}").into()),
    })
}

fn write_f32(path: &Path, v: &[f32]) -> Res<()> {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    fs::write(path, bytes)?;
    Ok(())
}

fn read_f32(path: &Path) -> Res<Vec<f32>> {
    let bytes = fs::read(path)?;
    Ok(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
}

fn read_meta(dir: &Path) -> Res<serde_json::Value> {
    Ok(serde_json::from_slice(&fs::read(dir.join("meta.json"))?)?)
}

fn generate(
    dir: &Path,
    n: usize,
    queries: usize,
    dim: usize,
    clusters: usize,
    noise: f32,
) -> Res<()> {
    fs::create_dir_all(dir)?;
    let g = Clustered::new(dim, clusters, noise, 2024);
    let base = g.sample(n, 1);
    let q = g.sample(queries, 2);
    let t = Instant::now();
    let gt = ground_truth(&base, &q, dim, 10);
    let gt_secs = t.elapsed().as_secs_f64();
    write_f32(&dir.join("base.f32"), &base)?;
    write_f32(&dir.join("queries.f32"), &q)?;
    let gt_bytes: Vec<u8> = gt.iter().flatten().flat_map(|r| (*r as u32).to_le_bytes()).collect();
    fs::write(dir.join("gt.u32"), gt_bytes)?;
    let meta = json!({"n": n, "queries": queries, "dim": dim, "clusters": clusters, "noise": noise, "k": 10,
        "ground_truth_secs": gt_secs, "format": "raw little-endian f32, row-major; gt.u32 = 10 row indices per query"});
    fs::write(dir.join("meta.json"), serde_json::to_vec_pretty(&meta)?)?;
    println!("{meta}");
    Ok(())
}

/// CPU time this thread has run, in seconds (from the scheduler, so time slices lost to other
/// processes on a shared machine are not counted).
fn thread_cpu_secs() -> f64 {
    let stat = fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    stat.split_whitespace().next().and_then(|ns| ns.parse::<f64>().ok()).map_or(0.0, |ns| ns / 1e9)
}

/// Resident set size of this process in bytes.
fn rss() -> u64 {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn build(dir: &Path, storage_name: &str, m: usize, efc: usize, out: &Path) -> Res<()> {
    let meta = read_meta(dir)?;
    let dim = meta["dim"].as_u64().ok_or("meta.dim")? as usize;
    let base = read_f32(&dir.join("base.f32"))?;
    let params = HnswParams {
        m,
        ef_construction: efc,
        storage: storage(storage_name)?,
        ..HnswParams::default()
    };
    let records: Vec<(u64, &[f32])> =
        base.chunks_exact(dim).enumerate().map(|(i, v)| (i as u64, v)).collect();
    let rss0 = rss();
    let t = Instant::now();
    let mut index = HnswIndex::new(dim, params)?;
    index.insert_batch(&records)?;
    let build_secs = t.elapsed().as_secs_f64();
    let rss_delta = rss().saturating_sub(rss0);
    let memory_bytes = index.memory_bytes();
    let t = Instant::now();
    index.save(out)?;
    let save_secs = t.elapsed().as_secs_f64();
    let r = json!({"lib": "kai-memory", "phase": "build", "storage": storage_name, "m": m, "ef_construction": efc,
        "threads": rayon::current_num_threads(), "build_secs": build_secs, "save_secs": save_secs,
        "build_rss_delta_bytes": rss_delta, "index_memory_bytes": memory_bytes,
        "file_bytes": fs::metadata(out)?.len()});
    println!("{r}");
    Ok(())
}

/// Timed passes per `ef` (`ANN_PASSES`, default 5); the best is reported.
fn passes() -> usize {
    std::env::var("ANN_PASSES").ok().and_then(|v| v.parse().ok()).unwrap_or(5)
}

/// Candidates re-ranked exactly with int8 storage (`ANN_RERANK`, default 0 = all `ef`).
fn rerank() -> usize {
    std::env::var("ANN_RERANK").ok().and_then(|v| v.parse().ok()).unwrap_or(0)
}

fn query(dir: &Path, storage_name: &str, file: &Path, efs: &str) -> Res<()> {
    let meta = read_meta(dir)?;
    let dim = meta["dim"].as_u64().ok_or("meta.dim")? as usize;
    let queries = read_f32(&dir.join("queries.f32"))?;
    let gt: Vec<u64> = fs::read(dir.join("gt.u32"))?
        .chunks_exact(4)
        .map(|c| u64::from(u32::from_le_bytes([c[0], c[1], c[2], c[3]])))
        .collect();
    let rss0 = rss();
    let t = Instant::now();
    let index = HnswIndex::load_as(file, Some(storage(storage_name)?))?;
    let load_secs = t.elapsed().as_secs_f64();
    let rss_delta = rss().saturating_sub(rss0);
    let mut runs = Vec::new();
    for ef in efs.split(',') {
        let ef: usize = ef.parse()?;
        let params = SearchParams { rerank: rerank(), ..SearchParams::new(10, ef) };
        let mut found = Vec::new();
        // Warm-up pass (page cache, scratch), then the best of `passes()` timed passes.
        for q in queries.chunks_exact(dim) {
            found.push(index.search(q, &params, None)?);
        }
        let (mut best, mut best_cpu) = (f64::INFINITY, f64::INFINITY);
        for _ in 0..passes() {
            let (t, cpu) = (Instant::now(), thread_cpu_secs());
            for q in queries.chunks_exact(dim) {
                std::hint::black_box(index.search(q, &params, None)?);
            }
            best = best.min(t.elapsed().as_secs_f64());
            best_cpu = best_cpu.min(thread_cpu_secs() - cpu);
        }
        let nq = queries.len() / dim;
        let mut hits = 0usize;
        for (i, res) in found.iter().enumerate() {
            let truth = &gt[i * 10..(i + 1) * 10];
            hits += res.iter().filter(|h| truth.contains(&h.id)).count();
        }
        let qps_cpu = if best_cpu > 0.0 { nq as f64 / best_cpu } else { nq as f64 / best };
        runs.push(json!({"ef": ef, "qps": nq as f64 / best, "qps_cpu": qps_cpu, "recall_at_10": hits as f64 / (nq * 10) as f64}));
    }
    let r = json!({"lib": "kai-memory", "phase": "query", "storage": storage_name, "rerank": rerank(),
        "index_file": PathBuf::from(file).file_name().map(|f| f.to_string_lossy().into_owned()),
        "load_secs": load_secs, "load_rss_delta_bytes": rss_delta, "index_memory_bytes": index.memory_bytes(),
        "runs": runs});
    println!("{r}");
    Ok(())
}
