#!/usr/bin/env bash
# Issue 5: durable queue throughput (enqueue, claim → complete, enqueue → claim → complete) on
# SQLite and PostgreSQL with 1, 4 and 16 worker slots, the same loops on a Redis list
# (LPUSH / BRPOPLPUSH / LREM) in the same run — once on a Redis started here with
# `appendfsync always` (durable like us) and once on the machine's Redis (in memory, nothing on
# disk) — and the SQLite one-row commit ceiling of this disk. Writes bench/results/queue.json.
# Usage: bench/queue.sh [JOBS]   (default 4000; needs PostgreSQL at KAI_BENCH_POSTGRES_URL)
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${1:-4000}
PG=${KAI_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}
# QUEUE_BENCH_BIN=path reuses a built binary.
BIN=${QUEUE_BENCH_BIN:-${CARGO_TARGET_DIR:-target}/release/queue-bench}
[ -n "${QUEUE_BENCH_BIN:-}" ] || cargo build --release -q -p kai-bench --bin queue-bench
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
out() { echo "$@" >&2; }

redis-server --port 16390 --bind 127.0.0.1 --dir "$WORK" --appendonly yes --appendfsync always \
  --save '' --daemonize no --logfile "$WORK/redis.log" &
for _ in $(seq 50); do redis-cli -p 16390 ping >/dev/null 2>&1 && break; sleep 0.1; done

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
RESULTS=()
for W in 1 4 16; do
  R=$("$BIN" kai "sqlite://$WORK/q$W.db" "$JOBS" "$W"); out "$R"; RESULTS+=("$R")
  R=$("$BIN" kai "$PG" "$JOBS" "$W"); out "$R"; RESULTS+=("$R")
  R=$("$BIN" redis 127.0.0.1:16390 "appendfsync always" "$JOBS" "$W"); out "$R"; RESULTS+=("$R")
  R=$("$BIN" redis 127.0.0.1:6379 "in memory (machine default)" "$JOBS" "$W"); out "$R"; RESULTS+=("$R")
done
CEILING=$("$BIN" commit-ceiling "sqlite://$WORK/ceiling.db" 2000); out "$CEILING"
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

python3 - "$LOAD_BEFORE" "$LOAD_AFTER" "$CEILING" "${RESULTS[@]}" > bench/results/queue.json <<'PY'
import json, sys, datetime, platform
before, after, ceiling, *runs = sys.argv[1:]
print(json.dumps({
    "issue": 5,
    "what": "durable queue throughput: enqueue (8 producers, one durable enqueue each), drain (claim -> no-op -> complete, pool of N slots), e2e (both at once)",
    "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M"),
    "machine": {"cores": 2, "loadavg_before": before, "loadavg_after": after, "kernel": platform.release()},
    "sqlite_commit_ceiling": json.loads(ceiling),
    "runs": [json.loads(r) for r in runs],
}, indent=2))
PY
out "wrote bench/results/queue.json"
