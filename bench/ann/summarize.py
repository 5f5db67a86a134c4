#!/usr/bin/env python3
"""Folds the JSON lines of bench/ann/compare.sh into bench/results/ann.json, or prints its table.

  summarize.py RUNS.jsonl META.json CPUS UPTIME > ann.json
  summarize.py --table ann.json
"""
import json
import sys
from collections import defaultdict

TARGET_RECALL = 0.95


def config_name(r):
    name = "hnswlib" if r["lib"] == "hnswlib" else f"kai-{r['storage']}"
    if r.get("rerank"):
        name += f"-rerank{r['rerank']}"
    if r.get("build") == "portable":
        name += "-portable"
    return name


def fold(lines, meta, cpus, uptime):
    builds, queries = [], defaultdict(dict)
    for line in lines:
        r = json.loads(line)
        if r["phase"] == "build":
            builds.append({k: r.get(k) for k in ("lib", "storage", "efc", "m", "threads", "build_secs",
                                                 "build_rss_delta_bytes", "index_memory_bytes", "file_bytes")})
            continue
        q = queries[(config_name(r), r["efc"])]
        q.setdefault("load_rss_delta_bytes", r["load_rss_delta_bytes"])
        q["load_rss_delta_bytes"] = min(q["load_rss_delta_bytes"], r["load_rss_delta_bytes"])
        if "index_memory_bytes" in r:
            q["index_memory_bytes"] = r["index_memory_bytes"]
        runs = q.setdefault("runs", {})
        for x in r["runs"]:
            b = runs.setdefault(x["ef"], {"ef": x["ef"], "qps": 0, "qps_cpu": 0, "recall_at_10": x["recall_at_10"]})
            b["qps"] = max(b["qps"], x["qps"])
            b["qps_cpu"] = max(b["qps_cpu"], x["qps_cpu"] or 0)
    configs = []
    for (name, efc), q in sorted(queries.items()):
        runs = [q["runs"][ef] for ef in sorted(q["runs"])]
        at_target = next((x for x in runs if x["recall_at_10"] >= TARGET_RECALL), None)
        configs.append({"config": name, "efc": efc, "load_rss_delta_bytes": q["load_rss_delta_bytes"],
                        "index_memory_bytes": q.get("index_memory_bytes"), "runs": runs,
                        "first_ef_with_recall_095": at_target})
    verdicts = []
    for efc in sorted({c["efc"] for c in configs}):
        base = next((c for c in configs if c["config"] == "hnswlib" and c["efc"] == efc), None)
        if not base:
            continue
        for c in configs:
            if c["efc"] != efc or c is base:
                continue
            v = {"config": c["config"], "efc": efc,
                 "memory_ratio_vs_hnswlib": c["load_rss_delta_bytes"] / base["load_rss_delta_bytes"]}
            a, b = c["first_ef_with_recall_095"], base["first_ef_with_recall_095"]
            if a and b:
                v.update({"ef": a["ef"], "recall": a["recall_at_10"], "hnswlib_ef": b["ef"],
                          "hnswlib_recall": b["recall_at_10"],
                          "qps_ratio_at_recall_095": a["qps"] / b["qps"],
                          "qps_cpu_ratio_at_recall_095": a["qps_cpu"] / b["qps_cpu"]})
            same = {x["ef"]: x for x in base["runs"]}
            v["qps_cpu_ratio_same_ef"] = {x["ef"]: round(x["qps_cpu"] / same[x["ef"]]["qps_cpu"], 3)
                                          for x in c["runs"] if x["ef"] in same}
            verdicts.append(v)
    return {"benchmark": "ann", "issue": 6, "data": meta, "machine": {"cpus": cpus, "uptime_at_end": uptime},
            "targets": {"recall_at_10": TARGET_RECALL, "qps": ">= hnswlib", "memory_f32": "<= 1.1x hnswlib",
                        "memory_quantized": "<= 0.3x hnswlib"},
            "builds": builds, "queries": configs, "verdicts": verdicts}


def table(doc):
    mb = lambda b: f"{b / 2**20:.0f}" if b else "-"
    print("| index | efC | build s | RSS MB (load) | " + " | ".join(
        f"ef={x['ef']} QPS / cpu-QPS / R@10" for x in doc["queries"][0]["runs"]) + " |")
    print("|" + "---|" * (4 + len(doc["queries"][0]["runs"])))
    build = {(b["lib"] if b["lib"] == "hnswlib" else f"kai-{b['storage']}", b["efc"]): b for b in doc["builds"]}
    for c in doc["queries"]:
        key = c["config"].replace("file", "").split("-rerank")[0].replace("-portable", "")
        b = build.get((key, c["efc"]), {})
        cells = [f"{x['qps']:.0f} / {x['qps_cpu']:.0f} / {x['recall_at_10']:.3f}" for x in c["runs"]]
        print(f"| {c['config']} | {c['efc']} | {b.get('build_secs', 0):.1f} | {mb(c['load_rss_delta_bytes'])} | "
              + " | ".join(cells) + " |")
    print()
    for v in doc["verdicts"]:
        extra = ""
        if "qps_ratio_at_recall_095" in v:
            extra = (f"; first ef with R@10 ≥ 0.95: ours ef={v['ef']} ({v['recall']:.3f}), hnswlib ef={v['hnswlib_ef']} "
                     f"({v['hnswlib_recall']:.3f}); QPS ratio {v['qps_ratio_at_recall_095']:.2f} (cpu "
                     f"{v['qps_cpu_ratio_at_recall_095']:.2f})")
        print(f"- {v['config']} efC={v['efc']}: memory {v['memory_ratio_vs_hnswlib']:.2f}× hnswlib{extra}")


if __name__ == "__main__":
    if sys.argv[1] == "--table":
        table(json.load(open(sys.argv[2])))
    else:
        lines = [l for l in open(sys.argv[1]) if l.strip()]
        print(json.dumps(fold(lines, json.load(open(sys.argv[2])), int(sys.argv[3]), sys.argv[4]), indent=1))
