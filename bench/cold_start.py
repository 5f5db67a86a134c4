#!/usr/bin/env python3
"""Cold start and idle RSS of `kai serve`: start the node on an initialized data dir, poll
/ready until it answers 200, record the time; median of N runs. Then RSS after 2 s idle.
Usage: cold_start.py KAI_BINARY DATA_DIR PORT RUNS"""
import json, os, signal, statistics, subprocess, sys, time, urllib.request

kai, data, port, runs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
env = {k: v for k, v in os.environ.items() if not k.startswith("KAI_")}
open(os.path.join(data, "none.toml"), "a").close()
env.update({"KAI_DATA_DIR": data, "KAI_CONFIG": os.path.join(data, "none.toml"),
            "KAI_SYSTEM_CONFIG_DIR": os.path.join(data, "etc")})

def start():
    return subprocess.Popen([kai, "serve", "--listen", f"127.0.0.1:{port}"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

def wait_ready(proc, deadline=30.0):
    t0 = time.monotonic()
    while time.monotonic() - t0 < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=1) as r:
                if r.status == 200:
                    return
        except Exception:
            pass
        if proc.poll() is not None:
            raise SystemExit("kai exited during start")
        time.sleep(0.001)
    raise SystemExit("not ready within 30 s")

def stop(proc):
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)

times = []
for _ in range(runs):
    t0 = time.monotonic()
    p = start()
    wait_ready(p)
    times.append((time.monotonic() - t0) * 1000)
    stop(p)

p = start()
wait_ready(p)
time.sleep(2)
rss_kb = 0
with open(f"/proc/{p.pid}/status") as f:
    for line in f:
        if line.startswith("VmRSS:"):
            rss_kb = int(line.split()[1])
stop(p)
print(json.dumps({"cold_start_ms_median": statistics.median(times), "cold_start_ms_min": min(times),
                  "cold_start_ms_max": max(times), "runs": runs, "idle_rss_mb": rss_kb / 1024}))
