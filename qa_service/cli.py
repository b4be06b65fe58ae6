"""The ``qa`` command: ingest, serve, ask and eval."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from ingest.bundle import BundleError
from ingest.embedding import ModelNotFoundError

from .settings import ServiceSettings

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Extractive, cited question answering over drug leaflets.",
)

EXIT_SKIPPED = 3
EXIT_BELOW_FLOORS = 4
IndexOption = Annotated[
    Optional[Path], typer.Option("--index", help="Index bundle folder [env QA_INDEX_DIR, default ./index]")
]


def _settings(index: Path | None = None, **overrides: object) -> ServiceSettings:
    from pydantic import ValidationError

    from .settings import unknown_environment

    # The settings ignore QA_ variables they don't read: a misspelt or outdated name would change nothing.
    for name, nearest in unknown_environment(os.environ):
        hint = f"; did you mean {nearest}?" if nearest else " (README, \"Settings\", lists them)"
        typer.echo(f"warning: {name} is not a setting and is ignored{hint}", err=True)
    try:
        settings = ServiceSettings()
    except ValidationError as exc:
        problems = "; ".join(f"QA_{'__'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
        _fail(f"invalid setting: {problems}", 2)
    updates = {key: value for key, value in overrides.items() if value is not None}
    if index is not None:
        updates["index_dir"] = index
    return settings.model_copy(update=updates)


def _fail(message: str, code: int = 1) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _require_extra(extra: str, what: str) -> None:
    """Stop with what to install when the command's optional packages are missing."""
    from ingest.extras import MissingExtraError, require

    try:
        require(extra, what)
    except MissingExtraError as exc:
        _fail(str(exc))


class _RichProgress:
    """Embedding progress bar on a terminal; silent otherwise."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        self._progress = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            transient=True,
        )
        self._task = None

    def start(self, total: int) -> None:
        self._progress.start()
        self._task = self._progress.add_task("embedding chunks", total=total)

    def advance(self, n: int) -> None:
        self._progress.advance(self._task, n)

    def stop(self) -> None:
        self._progress.stop()


@app.command()
def ingest(
    corpus_dir: Annotated[Optional[Path], typer.Argument(help="Corpus folder [env QA_CORPUS_DIR, default ./corpus]")] = None,
    index: IndexOption = None,
    force: Annotated[bool, typer.Option(help="Re-embed every document even if unchanged.")] = False,
    ray: Annotated[
        Optional[str],
        typer.Option(
            "--ray",
            metavar="ADDRESS",
            help="Embed on a Ray cluster: 'auto' (this machine's cluster or RAY_ADDRESS), 'local' "
            "(start one here), 'ray://HOST:10001' or 'HOST:6379'. Needs the ray extra.",
        ),
    ] = None,
    ray_workers: Annotated[
        Optional[int], typer.Option(min=1, help="Ray workers, each holding the model [default: one per CPU, or GPU]")
    ] = None,
    ray_gpus: Annotated[
        float, typer.Option(min=0, help="GPUs per Ray worker (>0: the model runs on CUDA; workers need a CUDA torch)")
    ] = 0,
    ray_shard_size: Annotated[int, typer.Option(min=1, help="Texts a Ray worker embeds per task")] = 1024,
) -> None:
    """Build or refresh the index from a corpus folder (only changed files are re-embedded).

    Exit status: 0 all files indexed, 3 index built but some files were skipped, 1 error.
    """
    from contextlib import nullcontext

    _require_extra("ingest", "qa ingest")
    from ingest.build import IndexBuilder
    from ingest.ray_embedding import RayEncoder, RayIngestError

    settings = _settings(index, corpus_dir=corpus_dir)
    progress = _RichProgress() if sys.stderr.isatty() else None
    encoder = (
        RayEncoder(
            settings.embed_model,
            settings.embed_batch_size,
            address=ray,
            workers=ray_workers,
            gpus_per_worker=ray_gpus,
            shard_size=ray_shard_size,
        )
        if ray is not None
        else None
    )
    try:
        with encoder if encoder is not None else nullcontext():
            report = IndexBuilder(settings, encoder).build(progress=progress, force=force)
    except (FileNotFoundError, ModelNotFoundError, BundleError, RayIngestError, ValueError) as exc:
        _fail(str(exc))
    finally:
        if progress is not None:
            progress.stop()
    for skipped in report.skipped:
        typer.echo(f"skipped {skipped.path}: {skipped.reason}", err=True)
    typer.echo(report.summary())
    if report.skipped:
        raise typer.Exit(EXIT_SKIPPED)


@app.command()
def serve(
    index: IndexOption = None,
    host: Annotated[Optional[str], typer.Option(help="[env QA_HOST, default 127.0.0.1]")] = None,
    port: Annotated[Optional[int], typer.Option(help="[env QA_PORT, default 8000; 0 takes any free port]")] = None,
    workers: Annotated[
        Optional[int], typer.Option(min=1, help="Server processes over the one bundle [env QA_SERVING__WORKERS, default 1]")
    ] = None,
    forwarded_allow_ips: Annotated[
        Optional[str],
        typer.Option(help="Proxies whose X-Forwarded-For is believed, comma-separated or '*' "
                          "[env QA_FORWARDED_ALLOW_IPS, default 127.0.0.1]"),
    ] = None,
) -> None:
    """Serve the HTTP API and the chat widget."""
    import socket

    import uvicorn

    settings = _settings(index, host=host, port=port, forwarded_allow_ips=forwarded_allow_ips)
    if workers is not None:
        settings = settings.model_copy(update={"serving": settings.serving.model_copy(update={"workers": workers})})
    _check_files(settings)
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit it: a response written as headers then body must not wait
    # for the client's delayed ACK (40 ms a request on a kept-alive connection).
    listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        listener.bind((settings.host, settings.port))
    except OSError as exc:
        listener.close()
        _fail(f"cannot listen on {settings.host}:{settings.port}: {exc.strerror}")
    bound = listener.getsockname()[1]  # the port the system gave, when 0 was asked for
    host_part = f"[{settings.host}]" if family == socket.AF_INET6 else settings.host
    base = f"http://{host_part}:{bound}"
    typer.echo(f"Chat widget demo at {base}/ · API docs at {base}/docs (index {settings.index_dir})", err=True)
    count = settings.serving.workers
    logging = {"log_config": log_config(settings.log_format), "log_level": "info", "access_log": False,
               # the caller's address (for the rate limits) from X-Forwarded-For, when a trusted proxy sent it
               "proxy_headers": True, "forwarded_allow_ips": settings.forwarded_allow_ips}
    if count == 1:
        from .api import create_app

        config = uvicorn.Config(create_app(settings), host=settings.host, port=bound, **logging)
        uvicorn.Server(config).run(sockets=[listener])
        return
    # Each worker process builds the app from the environment: hand it what the command line said.
    # Their metrics go to files in one folder, which /metrics adds up (set before prometheus_client loads).
    import tempfile

    metrics_dir = tempfile.TemporaryDirectory(prefix="qa-metrics-")
    if settings.forwarded_allow_ips:
        os.environ["QA_FORWARDED_ALLOW_IPS"] = settings.forwarded_allow_ips
    os.environ.update({"QA_INDEX_DIR": str(settings.index_dir), "QA_SERVING__WORKERS": str(count),
                       "PROMETHEUS_MULTIPROC_DIR": metrics_dir.name})
    config = uvicorn.Config("qa_service.api:create_app", factory=True, host=settings.host, port=bound,
                            workers=count, **logging)
    try:
        _supervisor_class()(config, sockets=[listener]).run()
    finally:
        metrics_dir.cleanup()


def _check_files(settings: ServiceSettings) -> None:
    """The files the server opens at start, opened once here: a missing keys file or a records
    file of a newer version is a one-line message, not a failed start in a worker."""
    from .records import RecordsError, open_records

    from .settings import ApiKeysError

    try:
        settings.read_api_keys()
    except ApiKeysError as exc:
        _fail(str(exc))
    try:
        open_records(settings).close()  # its retention periods: opening deletes what is past them
    except (RecordsError, OSError, sqlite3.Error) as exc:
        _fail(f"the records file {settings.feedback_path()} can't be used: {exc}")


def log_config(fmt: str) -> dict:
    """Logging for ``qa serve``: one JSON object a line (``fmt`` "json": the access log's request id,
    route, status and duration as fields) or plain text, one line a record, on standard error."""
    formatter = (
        {"()": "pythonjsonlogger.json.JsonFormatter", "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
         "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"}}
        if fmt == "json"
        else {"()": "qa_service.logs.TextFormatter", "fmt": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "default", "stream": "ext://sys.stderr"}},
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
            "uvicorn.error": {"level": "INFO"},
            "qa_service": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        },
    }


def _supervisor_class():  # noqa: ANN202 - imported lazily: uvicorn only loads for `qa serve`
    from uvicorn.supervisors import Multiprocess

    class Supervisor(Multiprocess):
        """uvicorn's process supervisor, but SIGHUP reloads the index in every worker (each checks the
        new bundle and keeps serving the old one if it is refused) instead of restarting them."""

        def handle_hup(self) -> None:
            for process in self.processes:
                if process.pid is not None:
                    os.kill(process.pid, signal.SIGHUP)

    return Supervisor



def _answerer(settings: ServiceSettings):  # noqa: ANN202
    from .service import ServiceError, build_answerer

    try:
        return build_answerer(settings)
    except ServiceError as exc:
        _fail(str(exc))


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question, in quotes")],
    top_k: Annotated[int, typer.Option("--top-k", min=1, max=20, help="How many answers")] = 3,
    doc_id: Annotated[Optional[list[str]], typer.Option(help="Only search this document (repeatable)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the API's JSON response")] = False,
    index: IndexOption = None,
) -> None:
    """Answer a question from the index, with citations."""
    from .answering import UnknownDocumentError
    from .api.schemas import AskRequest, AskResponse

    try:
        AskRequest(question=question, top_k=top_k, doc_ids=doc_id)
    except ValueError as exc:
        _fail(f"invalid question: {exc.errors()[0]['msg']}", 2)  # type: ignore[attr-defined]
    answerer = _answerer(_settings(index))
    try:
        response = answerer.ask(question, top_k, doc_id)
    except UnknownDocumentError as exc:
        _fail(str(exc), 2)
    if as_json:
        typer.echo(AskResponse.model_validate(response, from_attributes=True).model_dump_json(indent=2))
        return
    if not response.answered:
        typer.echo(f"No answer in the documents: {response.reason}.")
        return
    if response.notice:  # the answers are about different medicines and the question named none
        typer.echo(f"Note: {response.notice}")
    for i, answer in enumerate(response.answers, start=1):
        c = answer.citation
        section = f", section \"{c.section}\"" if c.section else ""
        typer.echo(f"{i}. \"{answer.text}\"")
        typer.echo(f"   Source: {c.title}{section} [{c.doc_id} {c.start}:{c.end}] ({answer.confidence}, {answer.score:.2f})")


MAX_HITS = 1000
"""The most passages ``qa search`` returns a query (a TREC run's customary depth)."""


def _filter_of(values: list[str] | None, doc_ids: list[str] | None):  # noqa: ANN202 - scope.Filter
    from .scope import FILTER_FIELDS, Filter

    wanted: dict[str, list[str]] = {}
    for item in values or []:
        name, sep, value = item.partition("=")
        if not sep or not value.strip() or name.strip() not in FILTER_FIELDS:
            _fail(f"invalid --filter {item!r}: FIELD=VALUE, FIELD one of {', '.join(FILTER_FIELDS)}", 2)
        wanted.setdefault(name.strip(), []).append(value.strip())
    return Filter.of(wanted), doc_ids


def _hit_json(hit, rank: int | None = None) -> dict:  # noqa: ANN001 - results.Hit
    from .api.schemas import SearchResult

    body = SearchResult.model_validate(hit, from_attributes=True).model_dump(mode="json", exclude_none=True)
    return {"rank": rank, **body} if rank is not None else body


@app.command()
def search(
    query: Annotated[Optional[str], typer.Argument(help="One query, in quotes (or --topics FILE)")] = None,
    topics: Annotated[
        Optional[Path], typer.Option(help="Run every query of this file: TSV qid<TAB>query, or JSON lines {\"qid\", \"query\"}")
    ] = None,
    output: Annotated[
        Optional[Path], typer.Option("--output", "-o", help="Write the run here [default: standard output]")
    ] = None,
    fmt: Annotated[
        Optional[str],
        typer.Option("--format", metavar="trec|jsonl",
                     help="Run format: TREC 'qid Q0 passage_id rank score tag' or JSON lines, one query a line "
                          "[default: jsonl for an --output ending .jsonl, else trec]"),
    ] = None,
    hits: Annotated[
        Optional[int],
        typer.Option("--hits", "--k", "-k", min=1, max=MAX_HITS,
                     help=f"Passages a query, up to {MAX_HITS} [default: 10 for one query, 100 for --topics]"),
    ] = None,
    run_tag: Annotated[str, typer.Option(help="The run's name, the TREC run's last column")] = "drug-qa",
    filter_: Annotated[
        Optional[list[str]],
        typer.Option("--filter", metavar="FIELD=VALUE",
                     help="Only passages matching it, before ranking (repeatable; fields doc_id, section, "
                          "source, subject, format; values of one field: any of them)"),
    ] = None,
    doc_id: Annotated[Optional[list[str]], typer.Option(help="Only search this document (repeatable)")] = None,
    subjects: Annotated[
        str, typer.Option(metavar="auto|off", help="auto: read the documents about the medicines a query names; "
                                                     "off: rank every document alike")
    ] = "auto",
    collapse: Annotated[
        Optional[str], typer.Option(metavar="passage|document|none",
                                    help="Touching chunks as one passage, one passage a document, or every chunk "
                                         "[default: the service's, passage]")
    ] = None,
    offset: Annotated[int, typer.Option(min=0, max=MAX_HITS, help="Passages skipped before those returned")] = 0,
    explain: Annotated[bool, typer.Option(help="Add how each passage was scored (JSON output)")] = False,
    highlight: Annotated[bool, typer.Option(help="Add the matched query terms' offsets (JSON output)")] = False,
    index_version: Annotated[
        Optional[str], typer.Option(help="Refuse to run unless the index is this version (a run's meta gives it)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One query: print the API's JSON response")] = False,
    index: IndexOption = None,
) -> None:
    """Ranked passages for one query, or a run over a topics file (TREC or JSON lines).

    Exit status: 0 fine, 1 a file or the index can't be used, 2 bad arguments.
    """
    from .answering import UnknownDocumentError
    from .scope import Collapse, QueryOptions, SubjectsMode
    from .trec import TrecFormatError, read_topics

    if (query is None) == (topics is None):
        _fail("give one query or --topics FILE", 2)
    if query is not None and not query.strip():
        _fail("the query is empty", 2)
    if query is not None and (output is not None or fmt is not None):
        _fail("--output and --format write a run of --topics; one query prints (--json for JSON)", 2)
    if topics is not None and as_json:
        _fail("--json is for one query; a run of --topics is written with --format jsonl", 2)
    if fmt is not None and fmt not in ("trec", "jsonl"):
        _fail(f"invalid --format {fmt!r}: trec or jsonl", 2)
    if subjects not in ("auto", "off"):
        _fail(f"invalid --subjects {subjects!r}: auto or off", 2)
    if collapse is not None and collapse not in ("passage", "document", "none"):
        _fail(f"invalid --collapse {collapse!r}: passage, document or none", 2)
    if any(c.isspace() for c in run_tag) or not run_tag:
        _fail("the --run-tag must be one word (a TREC run's column)", 2)
    wanted, doc_ids = _filter_of(filter_, doc_id)
    options = QueryOptions(filter=wanted, subjects=SubjectsMode(subjects),
                           collapse=Collapse(collapse) if collapse else None, offset=offset,
                           explain=explain, highlight=highlight)
    k = hits or (10 if query is not None else 100)
    queries = None
    if topics is not None:
        try:
            queries = read_topics(topics)
        except TrecFormatError as exc:
            _fail(f"topics: {exc}")
    answerer = _answerer(_settings(index))
    if index_version is not None and index_version != answerer.index_version:
        _fail(f"the index at {answerer.settings.index_dir} is version {answerer.index_version}, not {index_version}")
    try:
        if query is not None:
            _print_search(answerer.search(query, k, doc_ids, options), as_json)
            return
        _write_run(answerer, queries, k, doc_ids, options, output, fmt, run_tag)
    except UnknownDocumentError as exc:
        _fail(str(exc), 2)


def _print_search(result, as_json: bool) -> None:  # noqa: ANN001 - results.SearchResult
    from .api.schemas import SearchResponse

    if as_json:
        typer.echo(SearchResponse.model_validate(result, from_attributes=True).model_dump_json(indent=2))
        return
    if not result.results:
        typer.echo("No passage matches.")
        return
    for rank, hit in enumerate(result.results, start=result.offset + 1):
        c = hit.citation
        section = f", section \"{c.section}\"" if c.section else ""
        text = " ".join(hit.text.split())
        typer.echo(f"{rank}. {hit.passage_id} ({hit.score:.4f}) {c.title}{section}")
        typer.echo(f"   {text[:300]}{'...' if len(text) > 300 else ''}")


def _plain(value: object) -> object:
    """A numpy number (an explanation's) as the Python one JSON can write."""
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _write_run(answerer, queries, k: int, doc_ids, options, output: Path | None, fmt: str | None,  # noqa: ANN001
               run_tag: str) -> None:
    import contextlib
    import time

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from .trec import trec_lines

    fmt = fmt or ("jsonl" if output is not None and output.suffix.lower() in (".jsonl", ".json", ".ndjson") else "trec")
    if output is not None and output.is_dir():
        _fail(f"--output {output} is a folder")
    try:
        handle = open(output, "w", encoding="utf-8") if output is not None else contextlib.nullcontext(sys.stdout)
    except OSError as exc:
        _fail(f"can't write {output}: {exc.strerror}")
    console = Console(stderr=True)
    progress = Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                        TimeRemainingColumn(), console=console, transient=True, disable=not console.is_terminal)
    began, passages = time.perf_counter(), 0
    with handle as out, progress:
        task = progress.add_task("searching", total=len(queries))
        for topic in queries:
            result = answerer.search(topic.query, k, doc_ids, options)
            passages += len(result.results)
            if fmt == "trec":
                lines = trec_lines(topic.qid, [h.passage_id for h in result.results],
                                   [h.score for h in result.results], run_tag, options.offset + 1)
                out.write("".join(line + "\n" for line in lines))
            else:
                out.write(json.dumps({
                    "qid": topic.qid, "query": topic.query, "subjects": result.subjects, "run_tag": run_tag,
                    "results": [_hit_json(h, rank) for rank, h in enumerate(result.results, start=options.offset + 1)],
                    **({"explain": result.explain} if result.explain is not None else {}),
                }, ensure_ascii=False, default=_plain) + "\n")
            progress.advance(task)
    meta = answerer.meta
    typer.echo(
        f"{len(queries)} queries, {passages} passages{f' written to {output}' if output else ''} "
        f"({fmt}, tag {run_tag}) in {time.perf_counter() - began:.1f} s; index {meta.index_version}, "
        f"config {meta.config_hash}, code {meta.code_version}",
        err=True,
    )


@app.command("eval")
def evaluate(
    gold: Annotated[
        Optional[Path], typer.Argument(help="Gold questions (JSON lines) [default: eval/gold.jsonl]", show_default=False)
    ] = None,
    index: IndexOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON")] = False,
    details: Annotated[Optional[Path], typer.Option(help="Write each question's answers and hits here")] = None,
    floors: Annotated[
        Optional[Path],
        typer.Option(help="Quality floors to hold [default: floors.json beside the gold file, if there is one]"),
    ] = None,
    check_floors: Annotated[bool, typer.Option("--check-floors/--no-floors", help="Hold the floors")] = True,
    write_floors: Annotated[
        bool, typer.Option("--write-floors", help="Set the floors from this run (held-out and all, 2 questions under)")
    ] = False,
    qrels: Annotated[
        Optional[Path], typer.Option(help="Score --run against these judgements (TREC qrels: qid iter docno rel)")
    ] = None,
    run: Annotated[
        Optional[Path], typer.Option(help="The run to score (TREC, or qa search's JSON lines)")
    ] = None,
    metric: Annotated[
        Optional[list[str]],
        typer.Option("--metric", "-m", help="With --qrels: a trec_eval name (recip_rank, ndcg_cut.10, recall.100, "
                                            "map, P.5, success.1) or a ranx one (mrr@10) (repeatable) "
                                            "[default: recip_rank, ndcg_cut.10, recall.100]"),
    ] = None,
    level: Annotated[
        str, typer.Option(metavar="auto|passage|document",
                          help="With --qrels: judge passages by overlap with the relevant spans, or by their "
                               "document [default auto: passage when every qrels docno is a passage id]")
    ] = "auto",
) -> None:
    """Score the service on a gold question set (per split and overall), or score a run against qrels.

    Exit status: 0 fine, 4 a metric is past its floor (the breaches and the
    questions that changed since the floors were set are printed), 1 error.
    """
    from rich.console import Console
    from rich.table import Table

    _require_extra("eval", "qa eval")
    if qrels is not None or run is not None or metric or level != "auto":
        given = [name for name, value in (("GOLD", gold), ("--index", index), ("--details", details),
                                           ("--floors", floors), ("--write-floors", write_floors)) if value]
        if qrels is None or run is None:
            _fail("a run is scored with both --qrels FILE and --run FILE", 2)
        if given:
            _fail(f"{', '.join(given)}: for the gold set, not for a run scored with --qrels", 2)
        _score_run(qrels, run, metric or ["recip_rank", "ndcg_cut.10", "recall.100"], level, as_json)
        return
    from .evaluation import METRICS, Floors, dump_results, load_gold, report, run_gold

    gold = gold or Path("eval/gold.jsonl")

    if not gold.exists():
        _fail(f"gold file {gold} does not exist")
    try:
        questions = load_gold(gold)
    except ValueError as exc:
        _fail(f"gold file {gold} is invalid: {exc}")
    floors_path = floors or gold.parent / "floors.json"
    if floors is not None and not floors.exists() and not write_floors:
        _fail(f"floors file {floors} does not exist")
    results = run_gold(_answerer(_settings(index)), questions)
    table = report(results)
    if details is not None:
        dump_results(results, details)
    if as_json:
        typer.echo(json.dumps(table, indent=2))
    else:
        out = Table(title=f"Gold evaluation ({gold})")
        out.add_column("metric")
        for split in table:
            out.add_column(f"{split} (n={table[split]['questions']})", justify="right")
        for metric in METRICS:
            out.add_row(metric, *(f"{table[s][metric]:.3f}" for s in table))
        Console().print(out)
    if write_floors:
        splits = [s for s in ("heldout", "all") if s in table]
        floors_path.write_text(Floors.from_results(results, splits).model_dump_json(indent=2) + "\n", encoding="utf-8")
        typer.echo(f"floors written to {floors_path}", err=True)
        return
    if not check_floors or not floors_path.exists():
        return
    try:
        held = Floors.load(floors_path)
    except (OSError, ValueError) as exc:
        _fail(f"floors file {floors_path} is invalid: {exc}")
    breaches = held.breaches(table)
    if breaches:
        typer.echo(f"below the floors in {floors_path}:", err=True)
        for line in breaches:
            typer.echo(f"  {line}", err=True)
        typer.echo("questions whose outcome changed since the floors were set:", err=True)
        for line in held.changes(results) or ["(none)"]:
            typer.echo(f"  {line}", err=True)
        raise typer.Exit(EXIT_BELOW_FLOORS)


def _score_run(qrels_path: Path, run_path: Path, metrics: list[str], level: str, as_json: bool) -> None:
    """``qa eval --qrels --run``: trec_eval's names and output, ranx's measures."""
    from .trec import LEVELS, TrecFormatError, ranx_metric, read_qrels, read_run, score_run

    if level not in LEVELS:
        _fail(f"invalid --level {level!r}: {', '.join(LEVELS)}", 2)
    for name in metrics:
        try:
            ranx_metric(name)
        except ValueError as exc:
            _fail(str(exc))
    try:
        judged = read_qrels(qrels_path)
    except TrecFormatError as exc:
        _fail(f"qrels: {exc}")
    try:
        ranked = read_run(run_path)
    except TrecFormatError as exc:
        _fail(f"run: {exc}")
    try:
        scores = score_run(ranked, judged, metrics, level)
    except TrecFormatError as exc:
        _fail(str(exc))
    if as_json:
        typer.echo(json.dumps({"metrics": scores.metrics, "level": scores.level, "queries": scores.queries,
                               "queries_without_results": scores.missing, "unjudged_queries": scores.unjudged,
                               "qrels": str(qrels_path), "run": str(run_path)}, indent=2))
    else:
        for name, value in scores.metrics.items():
            typer.echo(f"{name:<16}\tall\t{value:.4f}")
    note = f"{scores.queries} queries judged at {scores.level} level"
    if scores.missing:
        note += f", {scores.missing} with no result in the run (scored 0)"
    if scores.unjudged:
        note += f"; {scores.unjudged} queries of the run are not in the qrels (left out)"
    typer.echo(note, err=True)
