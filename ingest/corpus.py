"""Read a corpus folder: every supported file becomes a :class:`Document`.

Metadata comes from an optional sidecar next to the file, named after it with
``.meta.json`` appended (``leaflet.pdf`` → ``leaflet.pdf.meta.json``)::

    {"title": "Baclofen 10 mg tablets", "source": "https://example.org/leaflet",
     "subjects": ["Baclofen", "Lioresal"]}

Without a sidecar, the title is the one the format carries (HTML ``<title>``,
PDF metadata, the first Markdown ``#`` heading) or else the first line of the
text; the source is the file's path relative to the corpus folder. ``subjects``
(optional) names what the document is about; ingest adds the names it reads
off the text and title (``ingest.subjects``).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .documents import Document
from .loaders import LoadError, loader_for
from .sections import split_sections

SIDECAR_SUFFIX = ".meta.json"
MAX_TITLE_CHARS = 120


@dataclass(frozen=True)
class Skipped:
    """A corpus file that was not indexed, and why."""

    path: str
    reason: str


@dataclass(frozen=True)
class SourceFile:
    path: Path
    relative: str
    doc_id: str


def _slug(relative: str) -> str:
    stem = relative.rsplit(".", 1)[0] if "." in Path(relative).name else relative
    slug = re.sub(r"[^a-z0-9._-]+", "-", stem.lower()).strip("-.")
    return slug or "document"


def list_source_files(corpus_dir: Path) -> tuple[list[SourceFile], list[Skipped]]:
    """Supported files below ``corpus_dir`` with stable, unique document ids."""
    files: list[SourceFile] = []
    skipped: list[Skipped] = []
    taken: set[str] = set()
    for path in sorted(p for p in corpus_dir.rglob("*") if p.is_file()):
        relative = path.relative_to(corpus_dir).as_posix()
        if path.name.endswith(SIDECAR_SUFFIX) or any(part.startswith(".") for part in path.parts[len(corpus_dir.parts):]):
            continue
        if path.name.lower() in ("readme.md", "readme.txt", "readme"):
            continue
        if loader_for(path.suffix) is None:
            skipped.append(Skipped(relative, f"unsupported file type {path.suffix or '(none)'!r}"))
            continue
        doc_id = _slug(relative)
        if doc_id in taken:
            doc_id = f"{doc_id}-{path.suffix.lower().lstrip('.')}"
        suffix = 2
        base = doc_id
        while doc_id in taken:
            doc_id, suffix = f"{base}-{suffix}", suffix + 1
        taken.add(doc_id)
        files.append(SourceFile(path, relative, doc_id))
    return files, skipped


def _read_sidecar(path: Path) -> tuple[dict, bytes]:
    sidecar = path.with_name(path.name + SIDECAR_SUFFIX)
    if not sidecar.exists():
        return {}, b""
    raw = sidecar.read_bytes()
    try:
        meta = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LoadError(f"its metadata file {sidecar.name} is not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or not all(
        isinstance(meta.get(key, ""), str) for key in ("title", "source")
    ):
        raise LoadError(f"its metadata file {sidecar.name} must be an object with string 'title' and 'source'")
    subjects = meta.get("subjects", [])
    if not isinstance(subjects, list) or not all(isinstance(s, str) and s.strip() for s in subjects):
        raise LoadError(f"its metadata file {sidecar.name}: 'subjects' must be a list of names")
    return meta, raw


def _first_line(text: str) -> str | None:
    for line in text.splitlines():
        line = " ".join(line.split())
        if line:
            return line[:MAX_TITLE_CHARS]
    return None


def read_document(source: SourceFile) -> Document:
    """Load one file (raises :class:`LoadError` with the reason it can't be read)."""
    try:
        data = source.path.read_bytes()
    except OSError as exc:
        raise LoadError(f"can't be read ({exc.strerror})") from None
    if not data.strip():
        raise LoadError("the file is empty")
    meta, meta_raw = _read_sidecar(source.path)
    parsed = loader_for(source.path.suffix)(data)
    title = (meta.get("title") or parsed.title or _first_line(parsed.text) or source.path.stem).strip()
    content_hash = hashlib.sha256(data + b"\x00" + meta_raw).hexdigest()
    return Document(
        doc_id=source.doc_id,
        path=source.relative,
        title=title,
        source=(meta.get("source") or source.relative).strip(),
        format=source.path.suffix.lower().lstrip("."),
        content_hash=content_hash,
        text=parsed.text,
        sections=split_sections(parsed.text, parsed.headings),
        subjects=tuple(s.strip() for s in meta.get("subjects", [])),
    )


def read_corpus(corpus_dir: Path) -> Iterator[Document | Skipped]:
    """Every document of the corpus, or a :class:`Skipped` record for a file that failed."""
    files, skipped = list_source_files(corpus_dir)
    yield from skipped
    for source in files:
        try:
            yield read_document(source)
        except LoadError as exc:
            yield Skipped(source.relative, str(exc))
        except Exception as exc:  # noqa: BLE001 - one bad file never stops the build
            yield Skipped(source.relative, f"it could not be read ({type(exc).__name__}: {exc})")
