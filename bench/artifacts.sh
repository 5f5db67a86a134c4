#!/usr/bin/env bash
# Issue 6 artifact store throughput, in one run on this machine: a SIZE_MIB file (default 1024)
# copied with `cp` (and `cp` + fsync, since an upload is fsynced before it is acknowledged),
# then uploaded to a release `kai serve` (fs backend, same filesystem) with curl and with
# `kai artifact upload`, and downloaded with curl and `kai artifact get`. Every transfer is
# checked byte for byte. Writes bench/results/artifacts.json (or $OUT).
# Usage: bench/artifacts.sh [SIZE_MIB]; BENCH_KAI=path/to/kai skips the release build (the JSON
# records which binary and profile ran).
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MIB=${1:-1024}
if [ -n "${BENCH_KAI:-}" ]; then KAI=$BENCH_KAI; PROFILE=${BENCH_PROFILE:-custom}; else
  cargo build --release -q -p kai; KAI=${CARGO_TARGET_DIR:-target}/release/kai; PROFILE=release; fi
OUT=${OUT:-bench/results/artifacts.json}
WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/kai-bench-artifacts.XXXXXX")
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
export KAI_SYSTEM_CONFIG_DIR=$WORK/etc KAI_CONFIG=$WORK/config.toml KAI_DATA_DIR=$WORK/data
mkdir -p "$WORK/etc"
printf '[artifacts]\nmax_upload_bytes = %d\nupload_timeout_secs = 3600\n[limits]\nrequests_per_second = 0\n[log]\nlevel = "warn"\n' $(( (SIZE_MIB + 1) * 1048576 )) > "$KAI_CONFIG"
out() { echo "$@" >&2; }
now() { date +%s.%N; }
secs() { python3 -c "print(round($2 - $1, 3))"; }
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
FS=$(df -T "$WORK" | awk 'NR==2 {print $2}')

out "== a ${SIZE_MIB} MiB file of random bytes on $FS"
head -c $((SIZE_MIB * 1048576)) /dev/urandom > "$WORK/src.bin"
SUM=$(b3sum --no-names "$WORK/src.bin" 2>/dev/null || sha256sum "$WORK/src.bin" | cut -d' ' -f1)
cat "$WORK/src.bin" > /dev/null  # warm the page cache for every reader alike

t0=$(now); cp "$WORK/src.bin" "$WORK/cp.bin"; t1=$(now); CP=$(secs "$t0" "$t1")
rm -f "$WORK/cp.bin"; sync
t0=$(now); cp "$WORK/src.bin" "$WORK/cp.bin"; sync "$WORK/cp.bin"; t1=$(now); CP_SYNC=$(secs "$t0" "$t1")
rm -f "$WORK/cp.bin"; sync
out "cp: ${CP}s, cp + fsync: ${CP_SYNC}s"

"$KAI" init >/dev/null
"$KAI" serve --listen 127.0.0.1:17480 >/dev/null 2>"$WORK/node.log" &
KPID=$!
for _ in $(seq 200); do curl -sf http://127.0.0.1:17480/ready >/dev/null && break; sleep 0.05; done
TOKEN=$(cat "$WORK/data/admin.token")
RSS0=$(awk '/VmRSS/ {print $2}' /proc/$KPID/status)

t0=$(now)
ID=$(curl -sf -X POST -T "$WORK/src.bin" -H "Authorization: Bearer $TOKEN" -H 'content-type: application/octet-stream' \
  "http://127.0.0.1:17480/artifact/upload?name=bench.bin" | python3 -c 'import json,sys; print(json.load(sys.stdin)["artifact"]["id"])')
t1=$(now); UP_CURL=$(secs "$t0" "$t1")
t0=$(now); curl -sf -H "Authorization: Bearer $TOKEN" -o "$WORK/down.bin" "http://127.0.0.1:17480/artifact/$ID"; t1=$(now)
DOWN_CURL=$(secs "$t0" "$t1")
cmp "$WORK/src.bin" "$WORK/down.bin"; rm -f "$WORK/down.bin"
# A second name with new bytes for the CLI (so it is not deduplicated).
printf 'x' | dd of="$WORK/src.bin" bs=1 seek=0 conv=notrunc status=none
t0=$(now); "$KAI" --json artifact upload "$WORK/src.bin" --name bench-cli.bin > "$WORK/up.json" 2>/dev/null; t1=$(now)
UP_CLI=$(secs "$t0" "$t1")
CLI_ID=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["artifact"]["id"])' "$WORK/up.json")
t0=$(now); "$KAI" artifact get "$CLI_ID" -o "$WORK/down.bin" >/dev/null 2>&1; t1=$(now); DOWN_CLI=$(secs "$t0" "$t1")
cmp "$WORK/src.bin" "$WORK/down.bin"
# Deduplicated upload: the same bytes again are hashed but not stored twice.
t0=$(now); curl -sf -X POST -T "$WORK/src.bin" -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:17480/artifact/upload?name=dup.bin" >/dev/null; t1=$(now)
UP_DEDUP=$(secs "$t0" "$t1")
RSS_PEAK=$(awk '/VmHWM/ {print $2}' /proc/$KPID/status)
kill -TERM $KPID; wait $KPID || true
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

PROFILE=$PROFILE OUT=$OUT python3 - "$SIZE_MIB" "$CP" "$CP_SYNC" "$UP_CURL" "$DOWN_CURL" "$UP_CLI" "$DOWN_CLI" "$UP_DEDUP" "$RSS0" "$RSS_PEAK" "$LOAD_BEFORE" "$LOAD_AFTER" "$FS" "$SUM" <<'PY'
import json, os, sys, datetime
a = sys.argv[1:]
mib = int(a[0])
t = dict(zip(["cp", "cp_fsync", "upload_curl", "download_curl", "upload_cli", "download_cli", "upload_dedup"], map(float, a[1:8])))
res = {
    "benchmark": "artifact upload/download vs cp (issue 6)",
    "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "size_mib": mib,
    "profile": os.environ["PROFILE"],
    "filesystem": a[12],
    "load_before": a[10], "load_after": a[11],
    "seconds": t,
    "mib_per_s": {k: round(mib / v, 1) for k, v in t.items()},
    "vs_cp_fsync": {k: round(t["cp_fsync"] / v, 2) for k, v in t.items() if k.startswith(("upload", "download"))},
    "node_rss_kib": {"idle": int(a[8]), "peak": int(a[9])},
    "notes": "warm page cache; upload = stream to a staging file while hashing (BLAKE3), fsync, rename into place, fsync dir, row commit, audit; download = Range-capable stream; every transfer compared with cmp",
}
json.dump(res, open(os.environ["OUT"], "w"), indent=2)
print(json.dumps(res, indent=2))
PY
