#!/usr/bin/env bash
# Issue 7 benchmarks, in one run on this machine, against release builds:
#   page weight and time to interactive of the dashboard in Chromium (web/tests/bench.mjs);
#   WebSocket fan-out: SUBSCRIBERS clients on /ws, events published with POST /events at a set
#   rate, delivery latency over every delivery (bench/kai-bench ws-fanout), against a kai node
#   and against the bare-axum broadcast ceiling (hello-axum ws) in the same run. The server is
#   pinned to core 0 and the driver (publisher and all subscribers) to core 1.
# Writes bench/results/web.json (RESULT overrides). Usage: [FANOUT_CASES="1000 10,1000 100"] bench/web.sh [SECS]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
bash scripts/browser.sh
cargo build --release -q -p kai -p hello-axum -p kai-bench
# The fake model only answers the page benchmark's (idle) chat setup; any build of it will do.
[ -n "${FAKE_LLM_BIN:-}" ] || cargo build --release -q -p kai-llm --example fake-llm --features fake-servers
T=${CARGO_TARGET_DIR:-target}/release
ulimit -n "$(ulimit -Hn)"
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
out() { echo "$@" >&2; }
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

out "== page weight and time to interactive (Chromium, release node)"
PAGE=$(KAI_PROFILE=release RUNS=${RUNS:-10} node web/tests/bench.mjs)
out "$PAGE"

out "== WebSocket fan-out"
export KAI_SYSTEM_CONFIG_DIR=$WORK/etc KAI_CONFIG=$WORK/none.toml
mkdir -p "$WORK/etc"; touch "$WORK/none.toml"
KAI_DATA_DIR=$WORK/fan "$T/kai" init >/dev/null
KAI_DATA_DIR=$WORK/fan KAI_LOG__LEVEL=warn KAI_LIMITS__REQUESTS_PER_SECOND=0 \
  taskset -c 0 "$T/kai" serve --listen 127.0.0.1:17481 >/dev/null 2>&1 &
KPID=$!
for _ in $(seq 100); do curl -sf http://127.0.0.1:17481/ready >/dev/null && break; sleep 0.1; done
TOKEN=$(cat "$WORK/fan/admin.token")
taskset -c 0 "$T/hello-axum" ws 127.0.0.1:17482 >/dev/null &
HPID=$!
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/17482) 2>/dev/null && break; sleep 0.1; done

RUNS_JSON="$WORK/fanout.jsonl"
: > "$RUNS_JSON"
# subscribers rate: the literal target (1,000 × 10k events/s), 10k deliveries/s in aggregate,
# and the points in between that show where delivery stops keeping up.
# FANOUT_CASES overrides the list ("SUBS RATE,SUBS RATE,…").
IFS=, read -r -a CASES <<< "${FANOUT_CASES:-1000 10,1000 100,1000 1000,1000 10000,10 10000}"
for cfg in "${CASES[@]}"; do
  set -- $cfg
  for target in kai ceiling; do
    if [ $target = kai ]; then URL=http://127.0.0.1:17481; else URL=http://127.0.0.1:17482; fi
    R=$(taskset -c 1 "$T/kai-bench" ws-fanout "$URL" "$TOKEN" "$1" "$2" "$SECS")
    out "$target $1 subscribers × $2 events/s: $R"
    echo "{\"target\": \"$target\", \"result\": $R}" >> "$RUNS_JSON"
  done
done
RSS=$(awk '/VmRSS/ {print $2/1024}' /proc/$KPID/status)
kill -TERM $KPID $HPID; wait $KPID $HPID 2>/dev/null || true

python3 - "$PAGE" "$RUNS_JSON" "$LOAD_BEFORE" "$(cut -d' ' -f1-3 /proc/loadavg)" "$RSS" <<'PY'
import datetime, json, os, platform, sys
page = json.loads(sys.argv[1])
runs = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
doc = {
    "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
    "machine": platform.machine(),
    "cpus": os.cpu_count(),
    "load_avg_before": sys.argv[3],
    "load_avg_after": sys.argv[4],
    "page": page,
    "ws_fanout": {
        "note": "server on core 0, driver (publisher + every subscriber) on core 1; latency = publisher send to subscriber read, one clock",
        "kai_rss_mb_after": float(sys.argv[5]),
        "runs": runs,
    },
}
os.makedirs("bench/results", exist_ok=True)
with open(os.environ.get("RESULT", "bench/results/web.json"), "w") as f:
    json.dump(doc, f, indent=2)
print(json.dumps(doc, indent=2))
PY
