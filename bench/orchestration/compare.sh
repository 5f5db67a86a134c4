#!/usr/bin/env bash
# Issue 5: orchestration overhead against LangGraph. TASKS concurrent tasks, each a chain of
# STEPS model steps, against the in-repo fake OpenAI server with a fixed LATENCY_MS per call
# (`fake-llm --latency-ms`); the ideal makespan of a chain is STEPS x LATENCY_MS. Each repeat
# runs, alternating, against a fresh fake server:
#   chains      kai-bench chains: raw reqwest calls, no orchestration (the floor on this machine)
#   raw-*       the same chains in Python (httpx or aiohttp), no LangGraph (the Python floor)
#   langgraph-* bench/orchestration/langgraph_bench.py: a 10-node LangGraph StateGraph per task,
#               its nodes calling the fake with httpx (as the issue says) or aiohttp
#   kai         kai-bench orchestration: the real Tasks service in process (SQLite store, queue
#               workers, agents, audit, bus), one submitted ready-made graph per task
# Every run prints one JSON line; all of them, with the machine's load average before each,
# go to bench/results/orchestration.json.
#
# Needs a Python with langgraph and httpx (BENCH_PYTHON; default: the venv
# $HOME/.cache/kai-bench-venv, created on first use).
# Usage: bench/orchestration/compare.sh [TASKS] [STEPS] [LATENCY_MS] [REPEATS] [SIDES]
#   SIDES: space-separated subset of "chains raw-httpx raw-aiohttp langgraph-httpx langgraph-aiohttp
#   langgraph-sqlite kai" (default: chains raw-aiohttp langgraph-aiohttp langgraph-sqlite langgraph-httpx kai)
set -euo pipefail
cd "$(dirname "$0")/../.."
TASKS=${1:-1000}
STEPS=${2:-10}
LATENCY=${3:-50}
REPEATS=${4:-3}
SIDES=${5:-chains raw-aiohttp langgraph-aiohttp langgraph-sqlite langgraph-httpx kai}
VENV=${BENCH_VENV:-$HOME/.cache/kai-bench-venv}
PY=${BENCH_PYTHON:-$VENV/bin/python}
TARGET=${CARGO_TARGET_DIR:-target}
TMP=bench/results/tmp/orchestration
OUT=${BENCH_OUT:-bench/results/orchestration.json}
mkdir -p "$TMP" bench/results
say() { echo "$@" >&2; }

if ! "$PY" -c 'import langgraph, httpx, aiohttp, langgraph.checkpoint.sqlite' 2>/dev/null; then
  say "== installing langgraph, langgraph-checkpoint-sqlite, httpx and aiohttp into $VENV"
  python3 -m venv "$VENV" && "$VENV/bin/pip" install -q langgraph langgraph-checkpoint-sqlite httpx aiohttp
fi
if [ "${BENCH_SKIP_BUILD:-}" != 1 ]; then
  say "== building (release)"
  cargo build -q --release -p kai-bench
  cargo build -q --release -p kai-llm --features fake-servers --example fake-llm
fi
BENCH=${BENCH_KAI_BENCH:-$TARGET/release/kai-bench}
FAKE=${BENCH_FAKE_LLM:-$TARGET/release/examples/fake-llm}
# More sockets than the default 1024: a thousand client connections plus the server's.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# Starts a fresh fake server (it exits when its stdin closes) and sets FAKE_URL.
start_fake() {
  coproc FAKE_PROC { exec "$FAKE" --kind openai --latency-ms "$LATENCY"; }
  read -r line <&"${FAKE_PROC[0]}"
  FAKE_URL=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["base_url"])' "$line")
}
stop_fake() {
  local pid=$FAKE_PROC_PID
  eval "exec ${FAKE_PROC[1]}>&-"
  wait "$pid" 2>/dev/null || true
}

run_side() {
  case $1 in
    chains) "$BENCH" chains "$FAKE_URL" "$TASKS" "$STEPS" "$LATENCY" ;;
    raw-httpx | raw-aiohttp)
      "$PY" bench/orchestration/langgraph_bench.py "$FAKE_URL" "$TASKS" "$STEPS" "$LATENCY" --mode raw --client "${1#raw-}" ;;
    langgraph-httpx | langgraph-aiohttp)
      "$PY" bench/orchestration/langgraph_bench.py "$FAKE_URL" "$TASKS" "$STEPS" "$LATENCY" --client "${1#langgraph-}" ;;
    # The durability-matched peer: every step checkpointed to SQLite (WAL, synchronous=FULL).
    langgraph-sqlite)
      "$PY" bench/orchestration/langgraph_bench.py "$FAKE_URL" "$TASKS" "$STEPS" "$LATENCY" --client aiohttp --checkpointer sqlite ;;
    # The largest worker slots (256) and provider concurrency (64) a node's config allows.
    # (--workers 1000 stalled in the first trial: no model call was made; to investigate.)
    kai) "$BENCH" orchestration "$TASKS" "$STEPS" "$LATENCY" --fake-url "$FAKE_URL" ;;
    *) say "unknown side $1"; return 1 ;;
  esac
}

: >"$TMP/runs.jsonl"
for r in $(seq 1 "$REPEATS"); do
  for side in $SIDES; do
    start_fake
    load=$(cut -d' ' -f1-3 /proc/loadavg)
    say "== repeat $r: $side (load $load)"
    if line=$(run_side "$side" 2>"$TMP/$side.$r.err"); then
      echo "$line" | python3 -c 'import json,sys; r=json.loads(sys.stdin.read()); r.update(side=sys.argv[1], repeat=int(sys.argv[2]), load_before=[float(x) for x in sys.argv[3].split()]); print(json.dumps(r))' "$side" "$r" "$load" | tee -a "$TMP/runs.jsonl" >&2
    else
      say "   $side failed: $(tail -3 "$TMP/$side.$r.err")"
    fi
    stop_fake
  done
done
python3 bench/orchestration/summarize.py "$TMP/runs.jsonl" "$OUT"
