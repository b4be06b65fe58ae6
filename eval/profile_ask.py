"""Where the time of one question goes, outside HTTP: a pyinstrument profile of `/v1/ask`'s work.

    python eval/profile_ask.py [--index index] [--rounds 3] [--html profile.html]

Builds the answerer as the server does (answer cache off), asks every gold
question once to warm it up, then profiles ``--rounds`` passes over them in
one thread and prints, per question, the time spent in each of the project's
functions (inclusive, in milliseconds), the query encode among them. What the
encode does not explain is the Python and array work the service adds to the
floor.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("QA_SERVING__ANSWER_CACHE", "0")

from pyinstrument import Profiler  # noqa: E402

from qa_service.evaluation import load_gold  # noqa: E402
from qa_service.service import build_answerer  # noqa: E402
from qa_service.settings import ServiceSettings  # noqa: E402


def inclusive_times(frame, totals: dict[str, float], on_stack: frozenset[str] = frozenset()) -> None:  # noqa: ANN001
    """Sum each project function's inclusive time once per stack (recursion not counted twice)."""
    key = None
    path = frame.file_path or ""
    if str(REPO) in path and "/eval/" not in path and "/.venv/" not in path:
        key = f"{frame.function} ({Path(path).relative_to(REPO)})"
        if key not in on_stack:
            totals[key] += frame.time
    inner = on_stack | {key} if key else on_stack
    for child in frame.children:
        inclusive_times(child, totals, inner)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, default=REPO / "index")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--top", type=int, default=18)
    parser.add_argument("--search", action="store_true", help="Profile /v1/search's work instead of /v1/ask's")
    parser.add_argument("--html", type=Path, default=None, help="Also write pyinstrument's HTML view here")
    args = parser.parse_args()

    answerer = build_answerer(ServiceSettings(index_dir=args.index))
    questions = [q.question for q in load_gold(REPO / "eval" / "gold.jsonl")]
    work = answerer.search if args.search else answerer.ask
    for question in questions:  # lazily built caches (units of each document, analyser terms) filled
        work(question)

    profiler = Profiler(interval=0.001)
    began = time.perf_counter()
    profiler.start()
    for _ in range(args.rounds):
        for question in questions:
            work(question)
    profiler.stop()
    wall = time.perf_counter() - began
    asked = args.rounds * len(questions)

    totals: dict[str, float] = defaultdict(float)
    inclusive_times(profiler.last_session.root_frame(), totals)
    print(f"{asked} questions in {wall:.2f} s: {1000 * wall / asked:.2f} ms a question (profiled)")
    print("| function (inclusive) | ms a question | share |")
    print("|---|---|---|")
    for name, seconds in sorted(totals.items(), key=lambda kv: -kv[1])[: args.top]:
        print(f"| `{name}` | {1000 * seconds / asked:.2f} | {seconds / wall:.0%} |")
    if args.html:
        args.html.write_text(profiler.output_html(), encoding="utf-8")
        print(f"HTML profile written to {args.html}")


if __name__ == "__main__":
    main()
