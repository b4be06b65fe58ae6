"""How fast the service answers, every figure beside the floor measured in the same run.

    python eval/bench_speed.py [--index index] [--out docs/benchmarks.md] [--seconds 20]

The floor is one query encode with the served model (nothing can answer
without it). The script starts `qa serve` on a free loopback port as a user
would, and measures:

- cold start: process start to `/readyz` 200, and the server's resident memory;
- one client: `/v1/ask` and `/v1/search` over HTTP, each gold question once
  (nothing cached), p50 and p99;
- repeats: the same questions again (answered from the answer cache);
- 16 and 32 concurrent clients (asyncio, httpx) for ``--seconds`` each, against
  a second server with the answer cache off, so every request does the full work,
  and 16 against two worker processes (``--workers 2``): requests a second,
  p50/p99, errors.

Benchmarks are not tests: nothing here asserts; the figures go to
docs/benchmarks.md with the machine, the versions and the date.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx
import numpy as np
import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ingest.embedding import Embedder  # noqa: E402
from qa_service.evaluation import load_gold  # noqa: E402
from qa_service.settings import ServiceSettings  # noqa: E402


# As curl and browsers do: without it a request's body waits for the ACK of its headers
# (Nagle's algorithm against delayed ACKs), 40 ms a request that no server causes.
NODELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """`qa serve` in a child process, as a user starts it."""

    def __init__(self, index: Path, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        environment = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **env}
        self.began = time.perf_counter()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "qa_service", "serve", "--index", str(index), "--port", str(self.port)],
            env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        self.ready_s = self._wait_ready(in_a_row=1 if env.get("QA_SERVING__WORKERS", "1") == "1" else 20)

    def _wait_ready(self, timeout: float = 120, in_a_row: int = 1) -> float:
        """Seconds until ``/readyz`` answered 200 ``in_a_row`` times on new connections (with several
        workers, each connection may reach another process)."""
        deadline = time.perf_counter() + timeout
        ready, first = 0, None
        while time.perf_counter() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with status {self.process.returncode}")
            try:
                ok = httpx.get(self.url + "/readyz", timeout=2, headers={"Connection": "close"}).status_code == 200
            except httpx.TransportError:
                ok = False
            if ok:
                first = first or time.perf_counter() - self.began
                ready += 1
                if ready >= in_a_row:
                    return first
            else:
                ready, first = 0, None
            time.sleep(0.02)
        raise RuntimeError("the server was not ready in time")

    def rss_mb(self) -> float:
        return psutil.Process(self.process.pid).memory_info().rss / 2**20

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


def measure_floor(model: str, questions: list[str], index: Path | None = None) -> float:
    """Median ms of encoding one question (batch of one), warm, with the encoder the index
    was built with (its own ONNX export, or the model on torch)."""
    embedder = None
    if index is not None:
        from ingest.bundle import read_manifest
        from ingest.onnx_encoder import bundle_encoder

        embedder = bundle_encoder(index, read_manifest(index))
    embedder = embedder or Embedder(model)
    embedder.warm_up()
    for q in questions[:5]:
        embedder.embed([q])
    times = []
    for q in questions:
        began = time.perf_counter()
        embedder.embed([q])
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


def one_client(url: str, questions: list[str]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"ask": [], "search": []}
    with httpx.Client(base_url=url, timeout=60, transport=httpx.HTTPTransport(socket_options=NODELAY)) as http:
        http.post("/v1/ask", json={"question": "warm up: what is this medicine for?"})
        for q in questions:
            began = time.perf_counter()
            http.post("/v1/ask", json={"question": q}).raise_for_status()
            out["ask"].append((time.perf_counter() - began) * 1000)
            began = time.perf_counter()
            http.get("/v1/search", params={"q": q}).raise_for_status()
            out["search"].append((time.perf_counter() - began) * 1000)
    return out


async def concurrent_clients(url: str, questions: list[str], clients: int, seconds: float) -> dict:
    """``clients`` clients asking in a loop for ``seconds``: throughput, latency, errors."""
    latencies: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    transport = httpx.AsyncHTTPTransport(socket_options=NODELAY, limits=limits)
    async with httpx.AsyncClient(base_url=url, timeout=120, transport=transport) as http:
        async def client(offset: int) -> None:
            nonlocal errors
            i = offset
            while time.perf_counter() < stop_at:
                began = time.perf_counter()
                try:
                    response = await http.post("/v1/ask", json={"question": questions[i % len(questions)]})
                    if response.status_code != 200:
                        errors += 1
                except httpx.HTTPError:
                    errors += 1
                latencies.append((time.perf_counter() - began) * 1000)
                i += clients

        began = time.perf_counter()
        await asyncio.gather(*(client(k) for k in range(clients)))
        elapsed = time.perf_counter() - began
    return {"clients": clients, "requests": len(latencies), "rps": len(latencies) / elapsed,
            "p50": percentile(latencies, 50), "p99": percentile(latencies, 99), "errors": errors}


def versions() -> dict[str, str]:
    import faiss
    import fastapi
    import onnxruntime
    import sentence_transformers
    import torch

    return {"python": platform.python_version(), "torch": torch.__version__, "faiss": faiss.__version__,
            "sentence-transformers": sentence_transformers.__version__, "onnxruntime": onnxruntime.__version__,
            "fastapi": fastapi.__version__}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, default=REPO / "index")
    parser.add_argument("--out", type=Path, default=None, help="Write the report here (Markdown) and a .json beside it")
    parser.add_argument("--seconds", type=float, default=20.0, help="Duration of each concurrent run")
    args = parser.parse_args()

    questions = [q.question for q in load_gold(REPO / "eval" / "gold.jsonl")]
    model = ServiceSettings().embed_model
    floor = measure_floor(model, questions, args.index)
    print(f"floor (one query encode): {floor:.1f} ms")

    server = Server(args.index)
    try:
        cold = {"ready_s": server.ready_s, "rss_mb_ready": server.rss_mb()}
        single = one_client(server.url, questions)
        repeat = one_client(server.url, questions)
        cold["rss_mb_after"] = server.rss_mb()
    finally:
        server.stop()
    print(f"cold start {cold['ready_s']:.2f} s, RSS {cold['rss_mb_ready']:.0f} MB")

    uncached = Server(args.index, QA_SERVING__ANSWER_CACHE="0")
    try:
        load = [asyncio.run(concurrent_clients(uncached.url, questions, n, args.seconds)) for n in (16, 32)]
        rss_load = uncached.rss_mb()
    finally:
        uncached.stop()

    workers = Server(args.index, QA_SERVING__ANSWER_CACHE="0", QA_SERVING__WORKERS="2")
    try:
        load += [{**asyncio.run(concurrent_clients(workers.url, questions, 16, args.seconds)), "workers": 2}]
    finally:
        workers.stop()

    rows = [
        ("one encode (the floor)", floor, floor, None),
        ("/v1/ask, one client", percentile(single["ask"], 50), percentile(single["ask"], 99), None),
        ("/v1/search, one client", percentile(single["search"], 50), percentile(single["search"], 99), None),
        ("/v1/ask, repeated question (cache)", percentile(repeat["ask"], 50), percentile(repeat["ask"], 99), None),
        ("/v1/search, repeated query (cache)", percentile(repeat["search"], 50), percentile(repeat["search"], 99), None),
        *((f"/v1/ask, {r['clients']} concurrent clients, no cache, {r.get('workers', 1)} worker(s)", r["p50"], r["p99"], r)
          for r in load),
    ]
    result = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "memory_gb": round(psutil.virtual_memory().total / 2**30, 1)},
        "versions": versions(), "floor_ms": floor, "cold": cold, "single": {k: {"p50": percentile(v, 50),
        "p99": percentile(v, 99)} for k, v in single.items()}, "repeat": {k: {"p50": percentile(v, 50),
        "p99": percentile(v, 99)} for k, v in repeat.items()}, "load": load, "rss_mb_under_load": rss_load,
        "questions": len(questions),
    }
    lines = [
        "| what | p50 ms | p99 ms | p50 / floor | p99 / floor | requests/s | errors |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, p50, p99, extra in rows:
        lines.append(
            f"| {name} | {p50:.1f} | {p99:.1f} | {p50 / floor:.2f} | {p99 / floor:.2f} | "
            + (f"{extra['rps']:.1f} ({extra['rps'] * floor / 1000:.2f} / floor) | {extra['errors']} |" if extra else "| |")
        )
    table = "\n".join(lines)
    print(table)
    summary = (
        f"Cold start (process start to /readyz 200): {cold['ready_s']:.2f} s. Resident memory: "
        f"{cold['rss_mb_ready']:.0f} MB when ready, {cold['rss_mb_after']:.0f} MB after the single-client runs, "
        f"{rss_load:.0f} MB after the concurrent runs."
    )
    print(summary)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
        machine, ver = result["machine"], result["versions"]
        report = [
            "# Speed benchmarks",
            "",
            f"Written by `make bench` (eval/bench_speed.py) on {result['date']}: {machine['platform']}, "
            f"{machine['cpus']} CPUs, {machine['memory_gb']} GiB; " + ", ".join(f"{k} {v}" for k, v in ver.items()) + ".",
            f"Index: `{args.index.name}/` ({len(questions)} gold questions asked). Every latency is also given as a "
            f"ratio to the floor, one query encode measured in the same run: **{floor:.1f} ms**.",
            "",
            table,
            "",
            summary,
            "",
            "The concurrent runs use a server with the answer cache off (`QA_SERVING__ANSWER_CACHE=0`), so every "
            f"request does the full work; each lasts {args.seconds:.0f} s.",
            "",
        ]
        generated = "<!-- figures: written by eval/bench_speed.py -->\n" + "\n".join(report) + "<!-- /figures -->\n"
        previous = args.out.read_text(encoding="utf-8") if args.out.exists() else ""
        begin, end = previous.find("<!-- figures"), previous.find("<!-- /figures -->")
        if begin >= 0 and end > begin:  # the notes written around the figures stay
            generated = previous[:begin] + generated + previous[end + len("<!-- /figures -->\n"):]
        args.out.write_text(generated, encoding="utf-8")
        print(f"report written to {args.out} (figures in {args.out.with_suffix('.json')})")


if __name__ == "__main__":
    main()
