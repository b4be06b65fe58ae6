"""The service under sustained load: a hot reload of the index under 32 clients, then a memory soak.

    python eval/bench_load.py [--index index] [--out docs/benchmarks.md] [--soak-seconds 600]

Two parts, each against `qa serve` started as a user starts it (eval/bench_speed.py's
``Server``), on loopback, with the answer cache off (``QA_SERVING__ANSWER_CACHE=0``) so
that every request does the full work, asking the gold questions (eval/gold.jsonl) in
turn with ``POST /v1/ask``, the load coming from wrk (bench_speed's ``wrk_run``):

1. Load and reload: 32 clients for 60 s; at 30 s the index on disk is replaced by a
   different bundle (the seed corpus plus one small document) and
   ``POST /v1/admin/reload`` (``Authorization: Bearer <QA_ADMIN_TOKEN>``) asks the
   server to swap to it. Reported: requests, errors (any non-2xx answer or socket
   error), p50/p99 latency and requests a second for the whole run and for the
   requests before, during and after the reload; the reload's status, body and
   duration; the documents served before and after it; the server's memory.
2. Soak: 8 clients for ``--soak-seconds`` (600 by default), the server's resident
   memory (RSS, its worker processes included) sampled every 5 s and drawn to
   docs/load.png; reported: start, end and highest RSS and the slope, MB a minute by
   least squares over the second half (after warm-up), and whether memory grows.

Choices:

- The new bundle is built before the load starts, in a second folder (a copy of the
  served bundle, so that ``qa ingest`` reuses its vectors and embeds only the added
  document), and put in place at 30 s with the two renames ``qa ingest`` itself ends
  with (``ingest.bundle.BundleWriter.commit``): the server sees the folder exactly as an
  in-place ``qa ingest`` leaves it, at the moment of the reload. Running ``qa ingest``
  in place during the load would distort the figures: it is a second Python process
  that loads the encoder, embeds and rebuilds the lexical and vector indexes (several
  seconds of CPU, measured and reported), on a machine of 2 cores that the 32 clients
  already saturate, so the "before" latencies would show the cost of the ingest, not
  of serving or of the reload.
- One 60 s wrk run with the reload fired from a timer thread at 30 s, rather than two
  30 s runs with the reload between them: the load never pauses, so requests are in
  flight while the files are swapped and the bundle reloaded (which is what has to
  cause no error), and no connection is closed and reopened at the boundary. The
  before/during/after split comes from every request's own start and end times,
  recorded by wrk's Lua hooks (one connection per wrk thread, so a thread's request
  and response pair up) on CLOCK_MONOTONIC, the clock Python's ``time.monotonic``
  reads, so they compare with the reload's times taken here. Socket errors are counted
  by wrk for the whole run only; non-2xx answers for each part.
- The soak runs with the cache off too, to exercise everything; the questions repeat
  (125 gold questions in turn), which with the cache off does not shorten any request.
- The machine's load and what other processes take of its cores are recorded (load
  average, and the CPU time of the machine minus that of the server, wrk and this
  script), since the figures are only comparable between runs on an equally idle
  machine.

Benchmarks are not tests: nothing here asserts; the figures go to docs/benchmarks.md
(between the ``<!-- load: ... -->`` markers, created at the end of the file when
absent; nothing else in the file is touched) and docs/bench/load.json. The reload
endpoint may be missing from a build: the report then says that it answered 404.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx
import numpy as np
import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "eval"))

from bench_speed import Server, ask_requests, percentile, versions, wrk_run  # noqa: E402
from qa_service.evaluation import load_gold  # noqa: E402

BEGIN, END = "<!-- load: written by eval/bench_load.py -->", "<!-- /load -->"
GROWTH_MB_PER_MIN = 0.5
"""A second-half slope above this is called growth (5 MB over ten minutes)."""

EXTRA_DOC = (
    "Storage of tablets (load benchmark document)\n\n"
    "This short note was added by eval/bench_load.py to make the index it reloads differ from the one served. "
    "Keep the tablets in their original package, below 25 degrees Celsius, away from moisture "
    "and out of the reach of children. Do not use them after the expiry date printed on the carton.\n"
)

# Per-request records from wrk: one connection per thread, so request() and response() alternate
# in a thread's Lua state. Each thread appends "start end status" lines (CLOCK_MONOTONIC seconds).
RECORD_LUA = """
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bench_load_timespec;
int clock_gettime(int clk_id, bench_load_timespec *tp);
]]
local clock = ffi.new("bench_load_timespec")
local function now()
  ffi.C.clock_gettime(1, clock)  -- CLOCK_MONOTONIC
  return tonumber(clock.tv_sec) + tonumber(clock.tv_nsec) * 1e-9
end
local made = 0
function setup(thread)
  thread:set("id", made)
  made = made + 1
end
local log, started
function init(args)
  i = (id * %(stride)d) %% #requests  -- threads start at different questions
  log = io.open("%(folder)s/wrk-" .. id .. ".log", "w")
  log:setvbuf("line")
end
local next_request = request
request = function()
  started = now()
  return next_request()
end
function response(status, headers, body)
  log:write(string.format("%%.6f %%.6f %%d\\n", started, now(), status))
end
"""


def recorded_run(url: str, questions: list[str], clients: int, seconds: float) -> tuple[dict, np.ndarray]:
    """wrk's figures for ``clients`` connections asking ``questions`` in turn for ``seconds``, and
    every request's (start, end, status) on CLOCK_MONOTONIC, ordered by start."""
    with tempfile.TemporaryDirectory(prefix="bench-load-wrk-") as folder:
        lua = RECORD_LUA % {"stride": max(1, len(questions) // clients), "folder": folder}
        figures = wrk_run(url, ask_requests(questions), clients, seconds, threads=clients, lua=lua)
        rows = [line.split() for log in Path(folder).glob("wrk-*.log") for line in log.read_text().splitlines()]
    records = np.array([(float(a), float(b), int(c)) for a, b, c in rows]).reshape(-1, 3)
    return figures, records[np.argsort(records[:, 0])]


def window(records: np.ndarray, seconds: float | None = None) -> dict:
    """Requests, non-2xx answers, p50/p99 ms and requests a second of some records."""
    if not len(records):
        return {"requests": 0, "non_2xx": 0, "p50": float("nan"), "p99": float("nan"), "rps": float("nan")}
    latencies = list((records[:, 1] - records[:, 0]) * 1000)
    status = records[:, 2]
    span = seconds if seconds is not None else float(records[:, 1].max() - records[:, 0].min())
    return {"requests": len(records), "non_2xx": int(((status < 200) | (status > 299)).sum()),
            "p50": percentile(latencies, 50), "p99": percentile(latencies, 99), "rps": len(records) / span}


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (worker processes; shared pages counted in each)."""
    root = psutil.Process(pid)
    total = 0
    for process in [root, *root.children(recursive=True)]:
        try:
            total += process.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total / 2**20


def tree_cpu_s(pid: int) -> float:
    root = psutil.Process(pid)
    total = 0.0
    for process in [root, *root.children(recursive=True)]:
        try:
            times = process.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


class CpuShare:
    """Cores used by other processes than the server, this script and the children it waited for (wrk),
    between construction and :meth:`stop`: the machine's busy time minus theirs."""

    def __init__(self, server_pid: int) -> None:
        self.pid = server_pid
        self.began = time.monotonic()
        self.start = self._sample()

    def _sample(self) -> tuple[float, float, float]:
        machine = psutil.cpu_times()
        busy = machine.user + machine.nice + machine.system + machine.irq + machine.softirq + machine.steal
        own = os.times()
        return busy, tree_cpu_s(self.pid), own.user + own.system + own.children_user + own.children_system

    def stop(self) -> dict:
        elapsed = time.monotonic() - self.began
        busy, server, own = (b - a for a, b in zip(self.start, self._sample()))
        return {"server_cores": server / elapsed, "bench_and_wrk_cores": own / elapsed,
                "other_cores": max(0.0, busy - server - own) / elapsed, "cores": psutil.cpu_count()}


class Sampler(threading.Thread):
    """The server's resident memory and the machine's 1-minute load average every ``every`` seconds."""

    def __init__(self, pid: int, every: float) -> None:
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.began = time.monotonic()
        self.samples: list[tuple[float, float, float]] = []  # (s since start, RSS MB, load average)
        self._done = threading.Event()

    def run(self) -> None:
        while True:
            self.samples.append((time.monotonic() - self.began, tree_rss_mb(self.pid), os.getloadavg()[0]))
            if self._done.wait(self.every):
                return

    def stop(self) -> list[tuple[float, float, float]]:
        self._done.set()
        self.join()
        return self.samples


def prepare_bundles(index: Path, folder: Path) -> dict:
    """The bundle to serve (a copy of ``index``) and the next one (the seed corpus plus one document),
    built now by ``qa ingest`` into a second folder."""
    served, following = folder / "index", folder / "index-next"
    shutil.copytree(index, served)
    shutil.copytree(index, following)  # ingest reuses the vectors of unchanged documents
    corpus = folder / "corpus"
    shutil.copytree(REPO / "corpus", corpus)
    (corpus / "load-bench-storage-note.txt").write_text(EXTRA_DOC, encoding="utf-8")
    (corpus / "load-bench-storage-note.txt.meta.json").write_text(
        json.dumps({"title": "Storage of tablets (load benchmark)", "source": "written by eval/bench_load.py"}),
        encoding="utf-8",
    )
    before = os.times()
    began = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "qa_service", "ingest", str(corpus), "--index", str(following)],
        cwd=REPO, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"},
    )
    seconds = time.perf_counter() - began
    after = os.times()
    if result.returncode != 0:
        raise SystemExit(f"qa ingest of the next bundle failed ({result.returncode}):\n{result.stderr}")

    def doc_ids(bundle: Path) -> set[str]:
        lines = (bundle / "documents.jsonl").read_text(encoding="utf-8").splitlines()
        return {json.loads(line)["doc_id"] for line in lines}

    added = sorted(doc_ids(following) - doc_ids(served))
    return {"served": served, "next": following, "added": added, "ingest_s": seconds,
            "ingest_cpu_s": after.children_user + after.children_system - before.children_user - before.children_system,
            "ingest_said": result.stdout.strip().splitlines()[-1]}


def documents_served(url: str, added: list[str]) -> dict:
    """How many documents ``/readyz`` counts, and the status of ``GET /v1/documents/{id}`` for the added ones."""
    try:
        ready = httpx.get(url + "/readyz", timeout=30)
        new = [httpx.get(f"{url}/v1/documents/{doc}", timeout=30).status_code for doc in added]
        return {"readyz": ready.status_code, "documents": ready.json().get("documents"), "added_doc_status": new}
    except (httpx.HTTPError, ValueError) as exc:
        return {"readyz": None, "documents": None, "added_doc_status": [], "error": f"{type(exc).__name__}: {exc}"}


def reload_index(url: str, token: str, bundles: dict) -> dict:
    """Put the next bundle in place as ``qa ingest`` does (two renames), then ask the server to reload."""
    served, following = bundles["served"], bundles["next"]
    swapped = time.monotonic()
    os.replace(served, served.with_name("index-retired"))
    os.replace(following, served)
    sent = time.monotonic()
    try:
        response = httpx.post(url + "/v1/admin/reload", headers={"Authorization": f"Bearer {token}"}, timeout=300)
        status, text = response.status_code, response.text
    except httpx.HTTPError as exc:
        status, text = None, f"{type(exc).__name__}: {exc}"
    answered = time.monotonic()
    try:
        body = json.loads(text)
    except ValueError:
        body = text[:500]
    if status == 404:
        said = "reload endpoint answered 404: not available in this build"
    elif status is None:
        said = f"the reload request failed: {text}"
    else:
        said = f"reload answered {status} in {answered - sent:.2f} s"
    return {"swapped": swapped, "sent": sent, "answered": answered, "seconds": answered - sent,
            "status": status, "body": body, "said": said}


def load_run(index: Path, questions: list[str], clients: int, seconds: float, reload_at: float) -> dict:
    token = secrets.token_urlsafe(24)
    with tempfile.TemporaryDirectory(prefix="bench-load-") as folder:
        bundles = prepare_bundles(index, Path(folder))
        print(f"next bundle built by qa ingest in {bundles['ingest_s']:.1f} s ({bundles['ingest_cpu_s']:.1f} s CPU): "
              f"{bundles['ingest_said']}")
        server = Server(bundles["served"], QA_SERVING__ANSWER_CACHE="0", QA_ADMIN_TOKEN=token,
                        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
        try:
            wrk_run(server.url, ask_requests(questions), 1, 4)  # one pass first, as bench_speed does
            served_before = documents_served(server.url, bundles["added"])
            rss_before = tree_rss_mb(server.process.pid)
            reload: dict = {}
            timer = threading.Timer(reload_at, lambda: reload.update(reload_index(server.url, token, bundles)))
            sampler = Sampler(server.process.pid, 1.0)
            cpu = CpuShare(server.process.pid)
            began = time.monotonic()
            sampler.start()
            timer.start()
            figures, records = recorded_run(server.url, questions, clients, seconds)
            timer.join()
            cores = cpu.stop()
            memory = sampler.stop()
            served_after = documents_served(server.url, bundles["added"])
            rss_after = tree_rss_mb(server.process.pid)
        finally:
            server.stop()
    print(reload["said"])
    starts, ends = records[:, 0], records[:, 1]
    before = records[ends <= reload["sent"]]
    after = records[starts >= reload["answered"]]
    during = records[(ends > reload["sent"]) & (starts < reload["answered"])]
    first, last = float(starts.min()), float(ends.max())
    socket_errors = figures["errors"] - int((records[:, 2] > 399).sum())  # wrk's count includes statuses > 399
    whole = {**window(records), "wrk_p50": figures["p50"], "wrk_p99": figures["p99"], "socket_errors": socket_errors}
    whole["errors"] = whole["non_2xx"] + socket_errors
    per_second = np.bincount((ends - began).astype(int), minlength=int(seconds))[: int(seconds)]
    reload_rss = [m for t, m, _ in memory if reload["sent"] - began <= t]
    return {
        "clients": clients, "seconds": seconds, "reload_at": reload_at,
        "whole": whole,
        "before": window(before, reload["sent"] - first),
        "during": window(during),
        "after": window(after, last - reload["answered"]) if len(after) else window(after),
        "reload": {k: reload[k] for k in ("status", "body", "seconds", "said")}
        | {"sent_at_s": reload["sent"] - began, "answered_at_s": reload["answered"] - began,
           "swap_ms": (reload["sent"] - reload["swapped"]) * 1000},
        "served_before": served_before, "served_after": served_after, "added_documents": bundles["added"],
        "ingest": {"seconds": bundles["ingest_s"], "cpu_seconds": bundles["ingest_cpu_s"], "said": bundles["ingest_said"]},
        "rss_mb": {"before": rss_before, "peak_from_reload": max(reload_rss) if reload_rss else None,
                   "after": rss_after},
        "cores": cores, "requests_per_second": per_second.tolist(),
        "load_average": [load for _, _, load in memory],
    }


def soak_run(index: Path, questions: list[str], clients: int, seconds: float, every: float) -> dict:
    server = Server(index, QA_SERVING__ANSWER_CACHE="0",
                    PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    try:
        sampler = Sampler(server.process.pid, every)
        cpu = CpuShare(server.process.pid)
        began = time.monotonic()
        sampler.start()
        figures, records = recorded_run(server.url, questions, clients, seconds)
        cores = cpu.stop()
        samples = sampler.stop()
    finally:
        server.stop()
    t = np.array([s[0] for s in samples]) / 60
    rss = np.array([s[1] for s in samples])
    half = t >= t.max() / 2
    slope = float(np.polyfit(t[half], rss[half], 1)[0]) if half.sum() >= 2 else float("nan")
    socket_errors = figures["errors"] - int((records[:, 2] > 399).sum())
    whole = {**window(records), "socket_errors": socket_errors}
    whole["errors"] = whole["non_2xx"] + socket_errors
    ends = records[:, 1] - began
    per_window = np.bincount((ends // every).astype(int), minlength=int(seconds // every))[: int(seconds // every)]
    return {
        "clients": clients, "seconds": seconds, "sample_every_s": every, "whole": whole,
        "rss_mb": {"start": float(rss[0]), "end": float(rss[-1]), "max": float(rss.max()),
                   "slope_mb_per_min_second_half": slope, "grows": bool(slope > GROWTH_MB_PER_MIN)},
        "samples": [{"s": round(s, 2), "rss_mb": round(m, 2), "load_average": la} for s, m, la in samples],
        "requests_per_window": (per_window / every).tolist(), "cores": cores,
    }


def plot(load: dict, soak: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 7.5))
    minutes = np.array([s["s"] for s in soak["samples"]]) / 60
    rss = np.array([s["rss_mb"] for s in soak["samples"]])
    top.plot(minutes, rss, ".-", label=f"RSS, sampled every {soak['sample_every_s']:g} s")
    half = minutes >= minutes.max() / 2
    if half.sum() >= 2:
        a, b = np.polyfit(minutes[half], rss[half], 1)
        top.plot(minutes[half], a * minutes[half] + b, "r--", label=f"least squares, second half: {a:+.2f} MB/min")
    rate = np.array(soak["requests_per_window"])
    right = top.twinx()
    right.plot((np.arange(len(rate)) + 0.5) * soak["sample_every_s"] / 60, rate, color="0.6", lw=0.8)
    right.set_ylabel("requests/s (grey)")
    right.set_ylim(0, max(rate.max() * 1.3, 1))
    top.set(xlabel="minutes since the load started", ylabel="resident memory, MB (2^20 bytes)",
            title=f"Soak: server RSS over {soak['seconds'] / 60:.3g} min, {soak['clients']} clients, answer cache off")
    top.legend(loc="lower right", fontsize=8)
    per_second = load["requests_per_second"]
    bottom.bar(np.arange(len(per_second)) + 0.5, per_second, width=0.9, color="tab:blue", label="requests answered")
    reload = load["reload"]
    bottom.axvspan(reload["sent_at_s"], max(reload["answered_at_s"], reload["sent_at_s"] + 0.3), color="tab:red",
                   alpha=0.3, label=f"reload ({reload['said']})")
    bottom.set(xlabel="seconds since the load started", ylabel="requests/s",
               title=f"Load: {load['clients']} clients for {load['seconds']:g} s, index reloaded at {load['reload_at']:g} s")
    bottom.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def write_section(out: Path, text: str) -> None:
    """``text`` between the load markers of ``out`` (added at the end when absent); the rest untouched."""
    current = out.read_text(encoding="utf-8") if out.exists() else ""
    block = f"{BEGIN}\n{text}\n{END}"
    if BEGIN in current and END in current:
        current = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: block, current, count=1, flags=re.S)
    else:
        current = current.rstrip() + "\n\n" + block + "\n"
    out.write_text(current, encoding="utf-8")


def report(result: dict, plot_path: Path, out: Path) -> str:
    load, soak, machine = result["load"], result["soak"], result["machine"]
    reload = load["reload"]

    def row(name: str, w: dict, errors: str, rate: bool = True) -> str:
        return (f"| {name} | {w['requests']:,} | {errors} | {w['p50']:.1f} | {w['p99']:.1f} | "
                + (f"{w['rps']:.1f} |" if rate else "|"))

    whole = load["whole"]
    body = reload["body"] if isinstance(reload["body"], str) else json.dumps(reload["body"])
    body = body if len(body) <= 300 else body[:300] + "..."
    if reload["status"] == 200:
        reload_line = f"The reload answered 200 in {reload['seconds']:.2f} s: `{body}`."
    elif reload["status"] == 404:
        reload_line = ("**The reload endpoint answered 404: not available in this build** (the figures after "
                       f"{load['reload_at']:g} s are of the old bundle).")
    else:
        reload_line = f"**The reload did not succeed: {reload['said']}**: `{body}`."
    before, after = load["served_before"], load["served_after"]
    lines = [
        "## Load and soak",
        "",
        f"Written by `make bench-load` (eval/bench_load.py) on {result['date']}: {machine['platform']}, "
        f"{machine['cpus']} CPUs, {machine['memory_gb']} GiB; " + ", ".join(f"{k} {v}" for k, v in result["versions"].items())
        + f". Load average (1, 5, 15 min) when it started: {', '.join(f'{x:.2f}' for x in result['load_average_start'])}; "
        f"other processes used {load['cores']['other_cores']:.2f} of the {load['cores']['cores']} cores during the load "
        f"run and {soak['cores']['other_cores']:.2f} during the soak (the machine's busy time minus the server's, wrk's "
        "and the script's). The server: `qa serve`, one process, answer cache off (`QA_SERVING__ANSWER_CACHE=0`); "
        f"the {result['questions']} gold questions asked in turn with `POST /v1/ask` by wrk.",
        "",
        f"### {load['clients']} clients for {load['seconds']:g} s, index reloaded at {load['reload_at']:g} s",
        "",
        f"At {reload['sent_at_s']:.1f} s the served folder was replaced by a bundle with one more document "
        f"(built before the load by `qa ingest` in {load['ingest']['seconds']:.1f} s, {load['ingest']['cpu_seconds']:.1f} s "
        f"of CPU; put in place by the two renames ingest ends with, {reload['swap_ms']:.1f} ms) and "
        f"`POST /v1/admin/reload` sent. {reload_line} Documents served (`/readyz`): {before['documents']} before, "
        f"{after['documents']} after; the added document (`GET /v1/documents/{{id}}`): {before['added_doc_status']} "
        f"before, {after['added_doc_status']} after.",
        "",
        "| requests | how many | errors | p50 ms | p99 ms | requests/s |",
        "|---|---|---|---|---|---|",
        row("whole run", whole, f"{whole['errors']} ({whole['non_2xx']} non-2xx, {whole['socket_errors']} socket)"),
        row("before the reload was sent", load["before"], str(load["before"]["non_2xx"])),
        row("in flight while it ran", load["during"], str(load["during"]["non_2xx"]), rate=False),
        row("sent after it answered", load["after"], str(load["after"]["non_2xx"])),
        "",
        f"Errors are non-2xx answers and, for the whole run only (wrk counts them), socket errors. wrk's own "
        f"p50/p99 of the run: {whole['wrk_p50']:.1f}/{whole['wrk_p99']:.1f} ms. Server RSS: "
        f"{load['rss_mb']['before']:.0f} MB before the load, "
        + (f"at most {load['rss_mb']['peak_from_reload']:.0f} MB from the reload on, " if load['rss_mb']['peak_from_reload'] else "")
        + f"{load['rss_mb']['after']:.0f} MB after the run.",
        "",
        f"### Soak: {soak['clients']} clients for {soak['seconds'] / 60:.3g} min",
        "",
        f"![server memory over the soak and requests a second of the load run]({os.path.relpath(plot_path, out.parent)})",
        "",
        "| requests | errors | p50 ms | p99 ms | requests/s | RSS start MB | RSS end MB | RSS max MB | slope, 2nd half, MB/min | memory |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    s, m = soak["whole"], soak["rss_mb"]
    verdict = "grows" if m["grows"] else "does not grow"
    lines.append(
        f"| {s['requests']:,} | {s['errors']} ({s['non_2xx']} non-2xx, {s['socket_errors']} socket) | {s['p50']:.1f} | "
        f"{s['p99']:.1f} | {s['rps']:.1f} | {m['start']:.0f} | {m['end']:.0f} | {m['max']:.0f} | "
        f"{m['slope_mb_per_min_second_half']:+.3f} | {verdict} |"
    )
    lines += [
        "",
        f"RSS of the server process (and its workers, if any) sampled every {soak['sample_every_s']:g} s from the "
        f"moment the load started; the slope is a least-squares line over the second half (after warm-up); "
        f"memory is said to grow above {GROWTH_MB_PER_MIN} MB a minute. Load average over the soak "
        f"(1 min, includes the server and wrk): mean {np.mean([x['load_average'] for x in soak['samples']]):.2f}, "
        f"max {max(x['load_average'] for x in soak['samples']):.2f}. The suite took {result['took_min']:.1f} min.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, default=REPO / "index")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks.md",
                        help="Markdown report (its load section only)")
    parser.add_argument("--json", type=Path, default=REPO / "docs" / "bench" / "load.json")
    parser.add_argument("--plot", type=Path, default=REPO / "docs" / "load.png")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=60.0, help="Duration of the load run")
    parser.add_argument("--reload-at", type=float, default=30.0, help="Seconds into the load run to reload the index")
    parser.add_argument("--soak-clients", type=int, default=8)
    parser.add_argument("--soak-seconds", type=float, default=600.0)
    parser.add_argument("--sample-every", type=float, default=5.0, help="Seconds between memory samples of the soak")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed (Debian's package `wrk`): its per-request hooks split the run at the reload")
    if not (args.index / "manifest.json").exists():
        raise SystemExit(f"no index at {args.index}: run `qa ingest corpus --index {args.index}` (or make index)")

    started = time.monotonic()
    load_average_start = os.getloadavg()
    print(f"load average {load_average_start[0]:.2f} {load_average_start[1]:.2f} {load_average_start[2]:.2f}")
    questions = [q.question for q in load_gold(REPO / "eval" / "gold.jsonl")]
    load = load_run(args.index, questions, args.clients, args.seconds, args.reload_at)
    for name in ("whole", "before", "during", "after"):
        w = load[name]
        print(f"load {name}: {w['requests']} requests, {w.get('errors', w['non_2xx'])} errors, "
              f"p50 {w['p50']:.1f} ms, p99 {w['p99']:.1f} ms, {w['rps']:.1f}/s")
    soak = soak_run(args.index, questions, args.soak_clients, args.soak_seconds, args.sample_every)
    m = soak["rss_mb"]
    print(f"soak: {soak['whole']['requests']} requests, {soak['whole']['errors']} errors; RSS {m['start']:.0f} -> "
          f"{m['end']:.0f} MB (max {m['max']:.0f}), {m['slope_mb_per_min_second_half']:+.3f} MB/min over the second half")

    result = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "memory_gb": round(psutil.virtual_memory().total / 2**30, 1)},
        "versions": versions(), "load_average_start": load_average_start, "load_average_end": os.getloadavg(),
        "questions": len(questions), "took_min": (time.monotonic() - started) / 60,
        "load": load, "soak": soak,
    }
    plot(load, soak, args.plot)
    text = report(result, args.plot, args.out)
    print(text)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    write_section(args.out, text)
    print(f"report written to {args.out} (load section), {args.json} and {args.plot}")


if __name__ == "__main__":
    main()
