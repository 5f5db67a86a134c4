#!/usr/bin/env bash
# Authenticated request throughput: a fresh `kai serve` (SQLite, rate limit off) and 32 aiohttp
# clients calling GET /system/info with the admin API token for 5 s (after 1 s of warm-up).
# Prints requests/s. Used for the API-token cache (issue 4); compare two builds by alternating.
# Usage: bench/auth_rps.sh KAI_BIN   (aiohttp comes from the bench venv, installed if missing)
set -euo pipefail
KAI=$1; D=$(mktemp -d)
VENV=${BENCH_VENV:-$HOME/.cache/kai-bench-venv}
if ! "$VENV/bin/python" -c 'import aiohttp' 2>/dev/null; then
  python3 -m venv "$VENV" && "$VENV/bin/pip" install -q aiohttp
fi
printf '[log]\nlevel = "warn"\n[limits]\nrequests_per_second = 0\n' > $D/config.toml
KAI_DATA_DIR=$D/data KAI_CONFIG=$D/config.toml KAI_SYSTEM_CONFIG_DIR=$D/etc HOME=$D KAI_VAULT_PASSPHRASE="bench passphrase" KAI_VAULT_KEY_FILE=1 KAI_OWNER_PASSWORD="bench owner password" $KAI --json serve --listen 127.0.0.1:0 > $D/out 2>/dev/null &
PID=$!
for i in $(seq 100); do [ -s $D/out ] && break; sleep 0.1; done
ADDR=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["listening"])' $D/out)
TOKEN=$(cat $D/data/admin.token)
"$VENV/bin/python" - "$ADDR" "$TOKEN" <<'PY'
import asyncio, aiohttp, sys, time
addr, token = sys.argv[1], sys.argv[2]
async def main():
    n = 0
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as s:
        async def worker(deadline):
            nonlocal n
            while time.perf_counter() < deadline:
                async with s.get(f"http://{addr}/system/info") as r:
                    assert r.status == 200, r.status
                    await r.read()
                    n += 1
        await asyncio.gather(*[worker(time.perf_counter() + 1) for _ in range(32)])
        n = 0
        t = time.perf_counter()
        await asyncio.gather(*[worker(t + 5) for _ in range(32)])
        print(round(n / (time.perf_counter() - t)))
asyncio.run(main())
PY
kill $PID; wait $PID 2>/dev/null || true; rm -rf $D
