"""How fast the service answers, every figure beside the floor measured in the same run.

    python eval/bench_speed.py [--index index] [--out docs/benchmarks.md] [--seconds 20] [--shared ../shared/bench]
    python eval/bench_speed.py --batch-only [--index index] [--out docs/benchmarks.md]

The floor is one query encode with the served model (nothing can answer
without it). The script starts `qa serve` on a free loopback port as a user
would, and measures:

- cold start: process start to `/readyz` 200, and the server's resident memory;
- one client: `/v1/ask` and `/v1/search` over HTTP, the gold questions in turn
  against a server with the answer cache off (every request does the full work),
  p50 and p99;
- repeats: the same question again and again (answered from the answer cache);
- 16 and 32 concurrent clients for ``--seconds`` each, cache off, and 16
  against two worker processes (``--workers 2``): requests a second, p50/p99,
  errors;
- batches: 1,000 searches as one ``POST /v1/search/batch`` against 1,000 single
  ``POST /v1/search`` calls from one client (a Python client, as a researcher's
  script would be), cache off, both sides' results checked equal: 1,000
  distinct questions (the gold set and, from ``--shared``, MedQuAD's and
  COVID-QA's), and the gold questions each under 8 option sets (paging,
  ``k``, collapse, subjects off, highlight), a researcher's sweep. Alone:
  ``--batch-only`` (its own section of the report).

The load comes from wrk (a C load generator, Debian's package `wrk`) when it is
installed: it costs the two shared cores little, and its latencies are the
server's round trip. Without it, an asyncio httpx client does the same
(its own Python costs about a millisecond a request and a share of the cores,
so the figures are worse; the report names the client used).

Benchmarks are not tests: nothing here asserts; the figures go to
docs/benchmarks.md with the machine, the versions and the date.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx
import numpy as np
import psutil

REPO = Path(__file__).resolve().parent.parent
READER = REPO / "qa_service" / "data" / "reader"
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


def measure_floor(model: str, questions: list[str], index: Path | None = None) -> tuple[float, dict[int, float]]:
    """Median ms of encoding one question (batch of one), warm, with the encoder the index
    was built with (its own ONNX export, or the model on torch); and questions encoded a second
    in batches of 1, 4, 16 and 32 (what the model alone allows, whatever the server does)."""
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
    rates = {}
    for size in (1, 4, 16, 32):
        began = time.perf_counter()
        for start in range(0, len(questions), size):
            embedder.embed(questions[start:start + size])
        rates[size] = len(questions) / (time.perf_counter() - began)
    return statistics.median(times), rates


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


WRK_REPORT = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('\\nWRK-JSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "errors": %d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout + e.status))
end
"""


def wrk_run(url: str, requests: list[tuple[str, str, str | None]], clients: int, seconds: float,
            threads: int = 1, lua: str = "") -> dict:
    """``clients`` connections sending ``requests`` (method, path, JSON body) in turn for ``seconds``, with wrk.

    ``threads``: wrk's threads (each has its own Lua state and a share of the connections);
    ``lua``: more of the script, e.g. ``init`` or ``response`` hooks (it sees the locals
    ``requests`` and ``i``, the turn)."""
    entries = ",\n".join(
        "{%s, %s, %s}" % (json.dumps(method), json.dumps(path), json.dumps(body) if body is not None else "nil")
        for method, path, body in requests
    )
    script = (
        "local requests = {" + entries + "}\nlocal i = 0\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        "request = function()\n  i = i % #requests + 1\n  local r = requests[i]\n"
        "  return wrk.format(r[1], r[2], nil, r[3])\nend\n" + WRK_REPORT + lua
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    try:
        out = subprocess.run(
            ["wrk", f"-t{threads}", f"-c{clients}", f"-d{seconds:g}s", "--timeout", "60s", "-s", handle.name, url],
            capture_output=True, text=True, check=True,
        ).stdout
    finally:
        os.unlink(handle.name)
    figures = json.loads(out.split("WRK-JSON", 1)[1])
    return {"clients": clients, "requests": figures["requests"],
            "rps": figures["requests"] / (figures["duration_us"] / 1e6),
            "p50": figures["p50_us"] / 1000, "p99": figures["p99_us"] / 1000, "errors": figures["errors"]}


def ask_requests(questions: list[str]) -> list[tuple[str, str, str | None]]:
    return [("POST", "/v1/ask", json.dumps({"question": q})) for q in questions]


def search_requests(questions: list[str]) -> list[tuple[str, str, str | None]]:
    return [("GET", "/v1/search?" + str(httpx.QueryParams({"q": q})), None) for q in questions]


BATCH_SIZE = 1000
SWEEP = [{}, {"k": 5}, {"k": 20}, {"offset": 10}, {"collapse": "document"}, {"collapse": "none", "k": 20},
         {"subjects": "off"}, {"highlight": True}]
"""A researcher's sweep: each gold question under these options (8 x 125 = 1,000 searches)."""
BATCH_BEGIN, BATCH_END = "<!-- batch: written by eval/bench_speed.py -->", "<!-- /batch -->"


def batch_workloads(questions: list[str], shared: Path | None) -> dict[str, list[dict]]:
    """The searches of the batch benchmark: 1,000 distinct questions, and the gold questions' sweep."""
    distinct = list(dict.fromkeys(questions))
    for name in ("medquad", "covidqa"):
        qrels = shared / name / "qrels.jsonl" if shared is not None else None
        if qrels is not None and qrels.exists():
            with qrels.open(encoding="utf-8") as handle:
                distinct += [json.loads(line)["question"] for line in handle if line.strip()]
        distinct = list(dict.fromkeys(q for q in distinct if q.strip()))
    if len(distinct) < BATCH_SIZE:  # without the shared benchmarks: the gold questions again (repeats)
        print(f"only {len(distinct)} distinct questions (no --shared benchmarks): the gold questions repeat")
        distinct = [distinct[i % len(distinct)] for i in range(BATCH_SIZE)]
    sweep = [{"q": q, **options} for options in SWEEP for q in questions][:BATCH_SIZE]
    return {"distinct": [{"q": q} for q in distinct[:BATCH_SIZE]], "sweep": sweep}


def busy_seconds() -> float:
    """CPU seconds the machine has spent busy (every core)."""
    times = psutil.cpu_times()
    return times.user + times.nice + times.system + getattr(times, "irq", 0) + getattr(times, "softirq", 0)


def steal_seconds() -> float:
    """CPU seconds a virtual machine's host gave to others while this machine wanted them."""
    return getattr(psutil.cpu_times(), "steal", 0.0)


def own_seconds(*processes: psutil.Process) -> float:
    """CPU seconds of ``processes`` and their children (a server's workers)."""
    total = 0.0
    for process in processes:
        for each in [process, *process.children(recursive=True)]:
            try:
                cpu = each.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += cpu.user + cpu.system
    return total


def batch_vs_single(url: str, server: psutil.Process, queries: list[dict], rounds: int) -> dict:
    """``queries`` as one batch and as single calls from one client, ``rounds`` times each in turn: the
    seconds of each, whether every batch line equals its single call's body (``took_ms`` aside), and
    the share of the two cores other processes took meanwhile."""
    me = psutil.Process()
    body = "".join(json.dumps(q) + "\n" for q in queries).encode()
    runs: dict[str, list[float]] = {"single": [], "batch": []}
    others: list[float] = []
    stolen: list[float] = []
    equal = mismatched = 0
    transport = httpx.HTTPTransport(socket_options=NODELAY)
    with httpx.Client(base_url=url, timeout=600, transport=transport) as http:
        # one pass first, as the other runs do (lazily built state is not every request's cost)
        for query in queries[:125]:
            http.post("/v1/search", json=query).raise_for_status()
        for _ in range(rounds):
            for side in ("single", "batch"):
                busy, own, steal = busy_seconds(), own_seconds(me, server), steal_seconds()
                began = time.perf_counter()
                if side == "single":
                    singles = []
                    for query in queries:
                        response = http.post("/v1/search", json=query)
                        response.raise_for_status()
                        singles.append(response.json())
                else:
                    response = http.post("/v1/search/batch", content=body,
                                         headers={"Content-Type": "application/x-ndjson"})
                    response.raise_for_status()
                    lines = [json.loads(line) for line in response.content.split(b"\n") if line]
                elapsed = time.perf_counter() - began
                runs[side].append(elapsed)
                others.append(max(0.0, (busy_seconds() - busy) - (own_seconds(me, server) - own)) / elapsed)
                stolen.append((steal_seconds() - steal) / elapsed)
            for line, single in zip(lines, singles, strict=True):
                same = "result" in line and {k: v for k, v in line["result"].items() if k != "took_ms"} == \
                    {k: v for k, v in single.items() if k != "took_ms"}
                equal += same
                mismatched += not same
    single_s, batch_s = min(runs["single"]), min(runs["batch"])
    return {"queries": len(queries), "single_s": runs["single"], "batch_s": runs["batch"],
            "ratio": single_s / batch_s, "single_ms": single_s / len(queries) * 1000,
            "batch_ms": batch_s / len(queries) * 1000, "equal": equal, "mismatched": mismatched,
            "others_cores": max(others) if others else 0.0, "stolen_cores": max(stolen) if stolen else 0.0,
            "load_avg": os.getloadavg()}


def measure_batches(index: Path, questions: list[str], shared: Path | None, rounds: int) -> dict:
    """The batch benchmark on a server of its own, answer cache off (every search does the whole work)."""
    workloads = batch_workloads(questions, shared)
    server = Server(index, QA_SERVING__ANSWER_CACHE="0")
    try:
        process = psutil.Process(server.process.pid)
        out = {}
        for name, queries in workloads.items():
            out[name] = figures = batch_vs_single(server.url, process, queries, rounds)
            print(f"batch of {figures['queries']} ({name}): single calls {min(figures['single_s']):.2f} s, "
                  f"one batch {min(figures['batch_s']):.2f} s, {figures['ratio']:.2f}x; "
                  f"{figures['equal']} lines equal to their single call, {figures['mismatched']} not; "
                  f"other processes took up to {figures['others_cores']:.2f} of the cores, the host "
                  f"{figures['stolen_cores']:.2f}")
    finally:
        server.stop()
    return out


def batch_report(batches: dict, date: str, rounds: int) -> str:
    rows = ["| 1,000 searches | single calls, s | one batch, s | faster | lines equal to the single call | "
            "other processes, host (cores) |", "|---|---|---|---|---|---|"]
    names = {"distinct": "distinct questions (gold, MedQuAD, COVID-QA)",
             "sweep": "the 125 gold questions under 8 option sets"}
    for name, f in batches.items():
        rows.append(
            f"| {names[name]} | {min(f['single_s']):.2f} | {min(f['batch_s']):.2f} | **{f['ratio']:.2f}x** | "
            f"{f['equal']} of {f['equal'] + f['mismatched']} | {f['others_cores']:.2f}, {f['stolen_cores']:.2f} |")
    load = next(iter(batches.values()))["load_avg"]
    return "\n".join([
        "## Batches",
        "",
        f"Written by eval/bench_speed.py on {date} ({platform.platform()}, {os.cpu_count()} CPUs): 1,000 "
        "`POST /v1/search` calls in turn from one Python client "
        "(httpx, one connection) against one `POST /v1/search/batch` of the same 1,000 searches (NDJSON), on a "
        "`qa serve` with the answer cache off, so that every search does the whole work on both sides; "
        f"best of {rounds} rounds each, taken in turn. Every line of every batch is compared with its single "
        f"call's body (`took_ms` aside). Load average (1, 5, 15 min) at the end: {load[0]:.2f}, {load[1]:.2f}, "
        f"{load[2]:.2f}; 'other processes' is the most of the 2 cores the rest of the machine took during a run "
        "(its busy time minus the server's and the client's), 'host' the most the virtual machine's host kept "
        "from it (steal time).",
        "",
        *rows,
    ])


def write_batch_section(out: Path, text: str) -> None:
    """``text`` between the batch markers of ``out`` (added after the figures when absent)."""
    current = out.read_text(encoding="utf-8") if out.exists() else ""
    block = f"{BATCH_BEGIN}\n{text}\n{BATCH_END}"
    if BATCH_BEGIN in current and BATCH_END in current:
        current = re.sub(re.escape(BATCH_BEGIN) + ".*?" + re.escape(BATCH_END), lambda _: block, current,
                         count=1, flags=re.S)
    elif "<!-- /figures -->\n" in current:
        current = current.replace("<!-- /figures -->\n", "<!-- /figures -->\n\n" + block + "\n", 1)
    else:
        current = current.rstrip() + "\n\n" + block + "\n"
    out.write_text(current, encoding="utf-8")


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
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "bench",
                        help="The shared benchmarks (MedQuAD's and COVID-QA's questions for the batch benchmark)")
    parser.add_argument("--batch-rounds", type=int, default=2, help="Rounds of each side of the batch benchmark")
    parser.add_argument("--batch-only", action="store_true", help="Only the batch benchmark (its own section)")
    args = parser.parse_args()

    questions = [q.question for q in load_gold(REPO / "eval" / "gold.jsonl")]
    if args.batch_only:
        batches = measure_batches(args.index, questions, args.shared, args.batch_rounds)
        if args.out:
            date = datetime.now(timezone.utc).isoformat(timespec="seconds")
            write_batch_section(args.out, batch_report(batches, date, args.batch_rounds))
            print(f"batch section written to {args.out}")
        return
    model = ServiceSettings().embed_model
    floor, encode_rates = measure_floor(model, questions, args.index)
    print(f"floor (one query encode): {floor:.1f} ms")
    ceiling = ", ".join(f"batches of {size}: {rate:.0f} ({rate * floor / 1000:.2f} / floor)"
                        for size, rate in encode_rates.items())
    print(f"questions encoded a second by the model alone, {ceiling}")

    use_wrk = shutil.which("wrk") is not None
    client = "wrk" if use_wrk else "httpx (wrk is not installed)"
    print(f"load client: {client}")
    short = min(args.seconds, 10.0)

    server = Server(args.index)
    try:
        cold = {"ready_s": server.ready_s, "rss_mb_ready": server.rss_mb()}
        if use_wrk:
            one_q = questions[:1]
            wrk_run(server.url, ask_requests(one_q) + search_requests(one_q), 1, 1)  # fills the cache
            repeat = {"ask": wrk_run(server.url, ask_requests(one_q), 1, short),
                      "search": wrk_run(server.url, search_requests(one_q), 1, short)}
        else:
            one_client(server.url, questions)
            times = one_client(server.url, questions)
            repeat = {k: {"p50": percentile(v, 50), "p99": percentile(v, 99)} for k, v in times.items()}
        cold["rss_mb_after"] = server.rss_mb()
    finally:
        server.stop()
    print(f"cold start {cold['ready_s']:.2f} s, RSS {cold['rss_mb_ready']:.0f} MB")

    uncached = Server(args.index, QA_SERVING__ANSWER_CACHE="0")
    try:
        if use_wrk:
            # one pass first: what a server does once (each document's answer units made into objects, the
            # analyser's memo of question words, the model's buffers for each length) is not every request's cost
            wrk_run(uncached.url, ask_requests(questions) + search_requests(questions), 1, 4)
            single = {"ask": wrk_run(uncached.url, ask_requests(questions), 1, short),
                      "search": wrk_run(uncached.url, search_requests(questions), 1, short)}
            load = [wrk_run(uncached.url, ask_requests(questions), n, args.seconds) for n in (16, 32)]
        else:
            times = one_client(uncached.url, questions)
            single = {k: {"p50": percentile(v, 50), "p99": percentile(v, 99)} for k, v in times.items()}
            load = [asyncio.run(concurrent_clients(uncached.url, questions, n, args.seconds)) for n in (16, 32)]
        rss_load = uncached.rss_mb()
    finally:
        uncached.stop()

    # The trained reader (off by default, docs/evaluation.md): what it adds to a question.
    reading = Server(args.index, QA_SERVING__ANSWER_CACHE="0", QA_ANSWER__READER_MODEL=str(READER))
    try:
        if use_wrk:
            wrk_run(reading.url, ask_requests(questions), 1, 4)
            read_single = wrk_run(reading.url, ask_requests(questions), 1, short)
        else:
            one_client(reading.url, questions)
            times = one_client(reading.url, questions)["ask"]
            read_single = {"p50": percentile(times, 50), "p99": percentile(times, 99)}
    finally:
        reading.stop()
    reader_share = max(0.0, 1 - single["ask"]["p50"] / read_single["p50"])

    batches = measure_batches(args.index, questions, args.shared, args.batch_rounds)

    workers = Server(args.index, QA_SERVING__ANSWER_CACHE="0", QA_SERVING__WORKERS="2")
    try:
        if use_wrk:
            load += [{**wrk_run(workers.url, ask_requests(questions), 16, args.seconds), "workers": 2}]
        else:
            load += [{**asyncio.run(concurrent_clients(workers.url, questions, 16, args.seconds)), "workers": 2}]
    finally:
        workers.stop()

    rows = [
        ("one encode (the floor)", floor, floor, None),
        ("/v1/ask, one client", single["ask"]["p50"], single["ask"]["p99"], None),
        ("/v1/ask, one client, reader on (QA_ANSWER__READER_MODEL)", read_single["p50"], read_single["p99"], None),
        ("/v1/search, one client", single["search"]["p50"], single["search"]["p99"], None),
        ("/v1/ask, repeated question (cache)", repeat["ask"]["p50"], repeat["ask"]["p99"], None),
        ("/v1/search, repeated query (cache)", repeat["search"]["p50"], repeat["search"]["p99"], None),
        *((f"/v1/ask, {r['clients']} concurrent clients, no cache, {r.get('workers', 1)} worker(s)", r["p50"], r["p99"], r)
          for r in load),
    ]
    result = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "memory_gb": round(psutil.virtual_memory().total / 2**30, 1)},
        "versions": versions(), "floor_ms": floor, "encodes_per_s": encode_rates, "cold": cold, "single": single, "repeat": repeat,
        "reader": {**read_single, "share_of_p50": round(reader_share, 3)},
        "load": load, "rss_mb_under_load": rss_load, "questions": len(questions), "load_client": client,
        "batches": batches,
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
    summary += (f" With the reader on, it takes {reader_share:.0%} of a question's median time "
                f"({read_single['p50'] - single['ask']['p50']:.1f} of {read_single['p50']:.1f} ms).")
    summary += (f" Questions encoded a second by the model alone (no server; the most any number of clients "
                f"could get answered), {ceiling}.")
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
            f"Load client: {client}. The one-client and concurrent runs ask the gold questions in turn of a server "
            "with the answer cache off (`QA_SERVING__ANSWER_CACHE=0`), so every request does the full work (after "
            "one warm-up pass over the questions); the "
            f"repeats ask one question again and again of a server with the cache on. Concurrent runs last "
            f"{args.seconds:.0f} s each, the others {short:.0f} s.",
            "",
        ]
        generated = "<!-- figures: written by eval/bench_speed.py -->\n" + "\n".join(report) + "<!-- /figures -->\n"
        previous = args.out.read_text(encoding="utf-8") if args.out.exists() else ""
        begin, end = previous.find("<!-- figures"), previous.find("<!-- /figures -->")
        if begin >= 0 and end > begin:  # the notes written around the figures stay
            generated = previous[:begin] + generated + previous[end + len("<!-- /figures -->\n"):]
        args.out.write_text(generated, encoding="utf-8")
        write_batch_section(args.out, batch_report(batches, result["date"], args.batch_rounds))
        print(f"report written to {args.out} (figures in {args.out.with_suffix('.json')})")


if __name__ == "__main__":
    main()
