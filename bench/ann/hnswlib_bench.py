#!/usr/bin/env python3
"""The hnswlib side of bench/ann/compare.sh, on the files written by `ann_bench gen`.

  hnswlib_bench.py build DIR M EFC INDEX_FILE THREADS   # add_items on THREADS threads, save; prints JSON
  hnswlib_bench.py query DIR INDEX_FILE EF[,EF...]      # load, knn_query with num_threads=1; prints JSON

Run `query` under `taskset -c 0` for the one-core numbers. Queries go through one batched
knn_query call per pass (the C++ loop), so no Python overhead is counted per query.
"""
import json
import sys
import time

import hnswlib
import numpy as np


def rss():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def thread_cpu():
    """CPU time of this thread in seconds (scheduler accounting: time slices lost to other
    processes on a shared machine are not counted)."""
    with open("/proc/thread-self/schedstat") as f:
        return int(f.read().split()[0]) / 1e9


PASSES = int(__import__("os").environ.get("ANN_PASSES", "5"))


def load(d):
    meta = json.load(open(f"{d}/meta.json"))
    dim = meta["dim"]
    base = np.fromfile(f"{d}/base.f32", dtype="<f4").reshape(-1, dim)
    queries = np.fromfile(f"{d}/queries.f32", dtype="<f4").reshape(-1, dim)
    gt = np.fromfile(f"{d}/gt.u32", dtype="<u4").reshape(-1, 10)
    return meta, base, queries, gt


def build(d, m, efc, out, threads):
    meta, base, _, _ = load(d)
    r0 = rss()
    t = time.perf_counter()
    index = hnswlib.Index(space="ip", dim=meta["dim"])
    index.init_index(max_elements=len(base), M=m, ef_construction=efc, random_seed=100)
    index.add_items(base, np.arange(len(base)), num_threads=threads)
    secs = time.perf_counter() - t
    delta = rss() - r0
    t = time.perf_counter()
    index.save_index(out)
    save = time.perf_counter() - t
    print(json.dumps({"lib": "hnswlib", "version": getattr(hnswlib, "__version__", "0.8.0"), "phase": "build",
                      "storage": "f32", "m": m, "ef_construction": efc, "threads": threads, "build_secs": secs,
                      "save_secs": save, "build_rss_delta_bytes": delta,
                      "file_bytes": __import__("os").path.getsize(out)}))


def query(d, path, efs):
    meta, _, queries, gt = load(d)
    r0 = rss()
    t = time.perf_counter()
    index = hnswlib.Index(space="ip", dim=meta["dim"])
    index.load_index(path)
    load_secs = time.perf_counter() - t
    delta = rss() - r0
    index.set_num_threads(1)
    runs = []
    for ef in efs:
        index.set_ef(ef)
        labels, _ = index.knn_query(queries, k=10, num_threads=1)  # warm-up
        best = best_cpu = float("inf")
        for _ in range(PASSES):
            t, c = time.perf_counter(), thread_cpu()
            index.knn_query(queries, k=10, num_threads=1)
            best = min(best, time.perf_counter() - t)
            best_cpu = min(best_cpu, thread_cpu() - c)
        hits = sum(len(set(labels[i].tolist()) & set(gt[i].tolist())) for i in range(len(queries)))
        runs.append({"ef": ef, "qps": len(queries) / best, "qps_cpu": len(queries) / best_cpu, "recall_at_10": hits / (10 * len(queries))})
    print(json.dumps({"lib": "hnswlib", "phase": "query", "storage": "f32", "load_secs": load_secs,
                      "load_rss_delta_bytes": delta, "runs": runs}))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "build":
        build(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], int(sys.argv[6]))
    elif cmd == "query":
        query(sys.argv[2], sys.argv[3], [int(e) for e in sys.argv[4].split(",")])
    else:
        sys.exit(f"unknown command {cmd}")
