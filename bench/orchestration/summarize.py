"""Summarizes `bench/orchestration/compare.sh`: every run (one JSON line each) and, per side,
the median of its repeats; kai's overhead per step against LangGraph's. Writes OUT_JSON and a
table to stdout.

Usage: summarize.py RUNS_JSONL OUT_JSON"""
import json
import os
import statistics
import sys

runs = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
sides = {}
for r in runs:
    sides.setdefault(r["side"], []).append(r)
summary = {}
for side, rs in sides.items():
    med = lambda k: statistics.median(r[k] for r in rs)  # noqa: E731
    summary[side] = {
        "impl": rs[0]["impl"],
        "repeats": len(rs),
        "makespan_s_median": med("makespan_s"),
        "makespan_s_all": [r["makespan_s"] for r in rs],
        "vs_ideal_median": med("vs_ideal"),
        "overhead_per_step_ms_median": med("overhead_per_step_ms"),
        "cpu_per_step_us_median": med("cpu_per_step_us"),
        "steps_per_s_median": med("steps_per_s"),
        "tasks_per_s_median": med("tasks_per_s"),
        "peak_rss_mib_max": max(r["peak_rss_mib"] for r in rs),
    }
ratios = {}
for lg_side in ("langgraph-httpx", "langgraph-aiohttp", "langgraph-sqlite"):
    if "kai" in summary and lg_side in summary:
        k, lg = summary["kai"], summary[lg_side]
        ratios[f"{lg_side}_over_kai_overhead_per_step"] = lg["overhead_per_step_ms_median"] / max(k["overhead_per_step_ms_median"], 1e-9)
        ratios[f"{lg_side}_over_kai_cpu_per_step"] = lg["cpu_per_step_us_median"] / max(k["cpu_per_step_us_median"], 1e-9)
if "kai" in summary:
    ratios["kai_within_10pct_of_ideal"] = summary["kai"]["vs_ideal_median"] <= 1.10
if ratios:
    summary["ratios"] = ratios
out = {"summary": summary, "runs": runs, "load_average_after": os.getloadavg()}
json.dump(out, open(sys.argv[2], "w"), indent=1)
print(f"{'side':10} {'makespan s':>11} {'x ideal':>8} {'ovh/step ms':>12} {'cpu/step us':>12} {'steps/s':>9} {'peak RSS MiB':>13}")
for side, s in summary.items():
    if side == "ratios":
        continue
    print(f"{side:10} {s['makespan_s_median']:11.3f} {s['vs_ideal_median']:8.3f} {s['overhead_per_step_ms_median']:12.2f}"
          f" {s['cpu_per_step_us_median']:12.1f} {s['steps_per_s_median']:9.0f} {s['peak_rss_mib_max']:13.1f}")
if "ratios" in summary:
    print(json.dumps(summary["ratios"]))
