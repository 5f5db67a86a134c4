"""The LangGraph side of issue 5's orchestration benchmark (`bench/orchestration/compare.sh`).

A StateGraph of STEPS nodes in a chain (step i runs after step i-1, the shape of the kai side's
graph); each node makes one non-streaming OpenAI `POST /chat/completions` to the fake server
(`fake-llm --latency-ms N`) with one shared `httpx.AsyncClient`, passing the previous step's
output in the prompt. TASKS graph invocations run concurrently under `asyncio.gather`; prints
one JSON line: makespan, the ideal (STEPS x latency for a chain), overhead per step, CPU time per
step, and the peak RSS of this process.

`--mode raw` runs the same chains with plain HTTP calls and no LangGraph: what Python and the
HTTP client alone cost, to tell LangGraph's share from the client's. `--client aiohttp` uses one
shared aiohttp session instead of httpx (httpx's connection pool is slow at 1,000 concurrent
connections; aiohttp shows what LangGraph costs with a faster client).

`--checkpointer sqlite` persists every step's state with LangGraph's own `AsyncSqliteSaver`
(PyPI `langgraph-checkpoint-sqlite`; WAL, SQLite's default synchronous=FULL — the durability kai
gives every step), one thread per task: the like-for-like peer for kai's durable orchestrator.

Usage: python langgraph_bench.py BASE_URL TASKS STEPS LATENCY_MS [--mode langgraph|raw]
       [--client httpx|aiohttp] [--warmup N] [--checkpointer none|sqlite] [--db PATH]
"""

import argparse
import asyncio
import json
import os
import resource
import sys
import time
from typing import TypedDict

import httpx


class State(TypedDict):
    task: int
    step: int
    last: str


def prompt(task: int, step: int, last: str) -> str:
    # The fake echoes the prompt, so each step's prompt carries every earlier one (as kai's does).
    return f"Task {task}, step {step + 1}. Previous step's output: {last}"


def body(text: str) -> dict:
    return {
        "model": "fake-chat",
        "messages": [
            {"role": "system", "content": "You are a helpful executor."},
            {"role": "user", "content": text},
        ],
    }


async def call(client, url: str, text: str) -> str:
    if isinstance(client, httpx.AsyncClient):
        resp = await client.post(url, json=body(text))
        resp.raise_for_status()
        return resp.json()["choices"][0]["message"]["content"]
    async with client.post(url, json=body(text)) as resp:  # aiohttp
        resp.raise_for_status()
        return (await resp.json())["choices"][0]["message"]["content"]


def build_graph(client, url: str, steps: int, checkpointer=None):
    from langgraph.graph import END, START, StateGraph

    graph = StateGraph(State)

    def node(i: int):
        async def run(state: State) -> dict:
            out = await call(client, url, prompt(state["task"], i, state["last"]))
            return {"step": i + 1, "last": out}

        return run

    for i in range(steps):
        graph.add_node(f"step_{i}", node(i))
    graph.add_edge(START, "step_0")
    for i in range(1, steps):
        graph.add_edge(f"step_{i - 1}", f"step_{i}")
    graph.add_edge(f"step_{steps - 1}", END)
    return graph.compile(checkpointer=checkpointer)


async def raw_chain(client, url: str, task: int, steps: int) -> dict:
    last = ""
    for i in range(steps):
        last = await call(client, url, prompt(task, i, last))
    return {"task": task, "step": steps, "last": last}


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("base_url")
    p.add_argument("tasks", type=int)
    p.add_argument("steps", type=int)
    p.add_argument("latency_ms", type=float)
    p.add_argument("--mode", choices=["langgraph", "raw"], default="langgraph")
    p.add_argument("--client", choices=["httpx", "aiohttp"], default="httpx")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--checkpointer", choices=["none", "sqlite"], default="none")
    p.add_argument("--db", default="")
    a = p.parse_args()
    url = a.base_url.rstrip("/") + "/chat/completions"
    if a.client == "httpx":
        limits = httpx.Limits(max_connections=a.tasks + 16, max_keepalive_connections=a.tasks + 16)
        session = httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(120.0))
        client_version = f"httpx {httpx.__version__}"
    else:
        import aiohttp

        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=a.tasks + 16), timeout=aiohttp.ClientTimeout(total=120)
        )
        client_version = f"aiohttp {aiohttp.__version__}"
    saver_cm = None
    if a.checkpointer == "sqlite":
        import tempfile

        from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

        db = a.db or os.path.join(tempfile.mkdtemp(prefix="lg-ckpt-"), "checkpoints.db")
        saver_cm = AsyncSqliteSaver.from_conn_string(db)
    saver = await saver_cm.__aenter__() if saver_cm else None
    async with session as client:
        if a.mode == "langgraph":
            graph = build_graph(client, url, a.steps, saver)

            def invoke(t: int):
                config = {"configurable": {"thread_id": f"task-{t}"}}
                return graph.ainvoke({"task": t, "step": 0, "last": ""}, config=config)
        else:

            def invoke(t: int):
                return raw_chain(client, url, t, a.steps)

        # Warm the code paths (imports, graph compilation caches) — not the connection pool,
        # which the timed run grows to TASKS connections as the kai side's client does.
        await asyncio.gather(*(invoke(-1 - t) for t in range(a.warmup)))
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        results = await asyncio.gather(*(invoke(t) for t in range(a.tasks)))
        makespan = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
    if saver_cm:
        await saver_cm.__aexit__(None, None, None)
    done = sum(1 for r in results if r["step"] == a.steps)
    if done != a.tasks:
        sys.exit(f"only {done} of {a.tasks} graphs finished all {a.steps} steps")
    ideal = a.steps * a.latency_ms / 1000.0
    steps_total = a.tasks * a.steps
    impl = f"raw {a.client} (no orchestration)"
    if a.mode == "langgraph":
        from importlib.metadata import version

        impl = f"langgraph {version('langgraph')}"
        if a.checkpointer == "sqlite":
            impl += f" + AsyncSqliteSaver {version('langgraph-checkpoint-sqlite')}"
    print(
        json.dumps(
            {
                "impl": impl,
                "python": sys.version.split()[0],
                "client": client_version,
                "tasks": a.tasks,
                "steps": a.steps,
                "latency_ms": a.latency_ms,
                "makespan_s": makespan,
                "ideal_s": ideal,
                "vs_ideal": makespan / ideal,
                "overhead_per_step_ms": (makespan - ideal) * 1000.0 / a.steps,
                "cpu_s": cpu,
                "cpu_per_step_us": cpu * 1e6 / steps_total,
                "tasks_per_s": a.tasks / makespan,
                "steps_per_s": steps_total / makespan,
                "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
                "load_average": os.getloadavg(),
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
