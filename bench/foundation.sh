#!/usr/bin/env bash
# Whole-system benchmarks of issue 2, all in one run on this machine:
#   cold start (median of 10) and idle RSS; /health and an authenticated read under wrk,
#   next to a bare axum hello-world built in the same run; audit append throughput through the
#   real writer; `kai audit verify` on a 1,000,000-entry log.
# Also a secret read under load (issue 3). Writes bench/results/foundation.json. Usage: bench/foundation.sh [AUDIT_ENTRIES]
set -euo pipefail
cd "$(dirname "$0")/.."
ENTRIES=${1:-1000000}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo build --release -q -p kai -p hello-axum -p kai-bench
T=${CARGO_TARGET_DIR:-target}/release
KAI=$T/kai
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
export KAI_SYSTEM_CONFIG_DIR=$WORK/etc KAI_CONFIG=$WORK/none.toml
mkdir -p "$WORK/etc"; touch "$WORK/none.toml"
out() { echo "$@" >&2; }

out "== cold start and idle RSS"
KAI_DATA_DIR=$WORK/cold "$KAI" init >/dev/null
COLD=$(python3 bench/cold_start.py "$KAI" "$WORK/cold" 17471 10)
out "$COLD"

wrk_json() { # url [header]
  local url=$1; shift
  local r
  r=$(taskset -c 1 wrk -t1 -c64 -d10s --latency "$@" "$url")
  python3 - "$r" <<'PY'
import json, re, sys
t = sys.argv[1]
def lat(p):
    m = re.search(r"^\s+%s%%\s+([\d.]+)(us|ms|s)" % p, t, re.M)
    v, u = float(m.group(1)), m.group(2)
    return v / 1000 if u == "us" else v * 1000 if u == "s" else v
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
errors = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
print(json.dumps({"req_per_sec": rps, "p50_ms": lat(50), "p99_ms": lat(99), "non_2xx": int(errors.group(1)) if errors else 0}))
PY
}

out "== HTTP load (server on core 0, wrk -t1 -c64 -d10s on core 1)"
KAI_DATA_DIR=$WORK/load "$KAI" init >/dev/null
# The per-principal rate limit (default 50/s) is lifted for the load test.
KAI_DATA_DIR=$WORK/load KAI_LOG__LEVEL=warn KAI_LIMITS__REQUESTS_PER_SECOND=0 taskset -c 0 "$KAI" serve --listen 127.0.0.1:17472 >/dev/null 2>&1 &
KPID=$!
for _ in $(seq 100); do curl -sf http://127.0.0.1:17472/ready >/dev/null && break; sleep 0.1; done
TOKEN=$(cat "$WORK/load/admin.token")
KAI_HEALTH=$(wrk_json http://127.0.0.1:17472/health)
out "kai /health: $KAI_HEALTH"
KAI_AUTH=$(wrk_json http://127.0.0.1:17472/system/info -H "Authorization: Bearer $TOKEN")
out "kai /system/info (authenticated): $KAI_AUTH"
curl -sf -X PUT -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' \
  -d '{"value":"sk-0123456789abcdef0123456789abcdef"}' http://127.0.0.1:17472/vault/secrets/bench >/dev/null
KAI_SECRET=$(wrk_json http://127.0.0.1:17472/vault/secrets/bench -H "Authorization: Bearer $TOKEN")
out "kai secret read (authenticated, audited, durable): $KAI_SECRET"
RSS_AFTER=$(awk '/VmRSS/ {print $2/1024}' /proc/$KPID/status)
kill -TERM $KPID; wait $KPID || true
taskset -c 0 "$T/hello-axum" 127.0.0.1:17473 >/dev/null &
HPID=$!
for _ in $(seq 100); do curl -sf http://127.0.0.1:17473/health >/dev/null && break; sleep 0.1; done
HELLO=$(wrk_json http://127.0.0.1:17473/health)
out "bare axum /health: $HELLO"
kill $HPID; wait $HPID 2>/dev/null || true

out "== audit append (signed, durable, group commit)"
KAI_DATA_DIR=$WORK/audit1 "$KAI" init >/dev/null
APPEND1=$("$T/kai-bench" audit-append "$WORK/audit1" 2000 1)
out "1 appender: $APPEND1"
KAI_DATA_DIR=$WORK/audit "$KAI" init >/dev/null
APPEND=$("$T/kai-bench" audit-append "$WORK/audit" "$ENTRIES" 256)
out "256 appenders: $APPEND"

out "== audit verify of $ENTRIES entries"
VERIFY=$(KAI_DATA_DIR=$WORK/audit "$KAI" --json audit verify)
out "$VERIFY"

mkdir -p bench/results
python3 - "$COLD" "$KAI_HEALTH" "$KAI_AUTH" "$HELLO" "$APPEND1" "$APPEND" "$VERIFY" "$RSS_AFTER" "$KAI_SECRET" <<'PY' > bench/results/foundation.json
import json, sys, platform, datetime
c, kh, ka, h, a1, a, v, rss, ks = sys.argv[1:10]
v = json.loads(v)
print(json.dumps({
  "date": datetime.datetime.utcnow().isoformat() + "Z", "machine": platform.machine(), "cpus": 2,
  "cold_start": json.loads(c),
  "http": {"kai_health": json.loads(kh), "kai_system_info_authenticated": json.loads(ka), "bare_axum_health": json.loads(h), "kai_secret_read": json.loads(ks),
           "kai_rss_mb_after_load": float(rss)},
  "audit_append_1": json.loads(a1), "audit_append_256": json.loads(a),
  "audit_verify": {"ok": v["ok"], "entries": v["report"]["entries"], "seconds": v["seconds"]},
}, indent=2))
PY
cat bench/results/foundation.json
