"""Ingest end to end on real files: incremental re-ingest, refusal of foreign bundles, crash safety."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ingest.build import IndexBuilder, embed_text
from ingest.bundle import FORMAT_VERSION, MANIFEST, BundleError, load_bundle
from ingest.embedding import Embedder
from ingest.settings import IngestSettings
from tests.conftest import CORPUS, REPO


@pytest.fixture()
def corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "corpus"
    shutil.copytree(CORPUS, folder)
    return folder


def _settings(corpus: Path, **extra: object) -> IngestSettings:
    return IngestSettings(corpus_dir=corpus, index_dir=corpus.parent / "index", **extra)


def test_build_writes_a_loadable_bundle_with_verbatim_chunks(corpus: Path, embedder: Embedder) -> None:
    settings = _settings(corpus)
    report = IndexBuilder(settings, embedder).build()
    assert (report.documents, len(report.skipped), report.embedded_documents) == (2, 0, 2)
    bundle = load_bundle(settings.index_dir, expected_model=settings.embed_model)
    manifest = json.loads((settings.index_dir / MANIFEST).read_text())
    assert manifest["format_version"] == FORMAT_VERSION
    assert manifest["dimension"] == 384 and manifest["settings"]["chunk_size"] == 600
    assert set(manifest["documents"]) == {"baclosan-tablets-leaflet", "baclofen-how-long-in-system"}
    assert bundle.dense.ntotal == len(bundle.chunks) == report.chunks
    for chunk in bundle.chunks:
        doc = bundle.documents[chunk.doc_id]
        assert doc.text[chunk.start:chunk.end] == bundle.chunk_text(chunk)
    leaflet = bundle.documents["baclosan-tablets-leaflet"]
    assert leaflet.text == (corpus / "baclosan-tablets-leaflet.txt").read_text(encoding="utf-8")
    assert leaflet.title.startswith("The Baclosan: instructions for use")


def test_reingest_only_embeds_what_changed_and_drops_removed_files(corpus: Path, embedder: Embedder) -> None:
    settings = _settings(corpus)
    IndexBuilder(settings, embedder).build()
    unchanged = IndexBuilder(settings, embedder).build()
    assert unchanged.up_to_date and unchanged.embedded_documents == 0

    leaflet = corpus / "baclosan-tablets-leaflet.txt"
    leaflet.write_text(leaflet.read_text(encoding="utf-8") + "\nStorage note\n\nKeep the bottle closed.\n", encoding="utf-8")
    (corpus / "extra.md").write_text("# Extra\n\nBaclofen extra leaflet text.\n", encoding="utf-8")
    changed = IndexBuilder(settings, embedder).build()
    assert (changed.embedded_documents, changed.reused_documents) == (2, 1)
    bundle = load_bundle(settings.index_dir)
    assert "Keep the bottle closed." in bundle.documents["baclosan-tablets-leaflet"].text
    # reused vectors are the same vectors a fresh embedding gives
    other = [c for c in bundle.chunks if c.doc_id == "baclofen-how-long-in-system"][0]
    fresh = embedder.embed([embed_text(bundle.documents[other.doc_id], other)])[0]
    assert float(fresh @ bundle.vectors([other.chunk_id])[0]) > 0.999

    (corpus / "extra.md").unlink()
    removed = IndexBuilder(settings, embedder).build()
    assert removed.removed_documents == 1 and removed.embedded_documents == 0
    bundle = load_bundle(settings.index_dir)
    assert "extra" not in bundle.documents
    assert all(c.doc_id != "extra" for c in bundle.chunks)


def test_changed_chunking_settings_rebuild_everything(corpus: Path, embedder: Embedder) -> None:
    IndexBuilder(_settings(corpus), embedder).build()
    report = IndexBuilder(_settings(corpus, chunk_size=300, chunk_overlap=50), embedder).build()
    assert not report.up_to_date and report.embedded_documents == 2
    assert load_bundle(corpus.parent / "index").manifest.settings["chunk_size"] == 300


def test_unreadable_files_are_skipped_with_a_reason_and_the_rest_indexed(corpus: Path, embedder: Embedder) -> None:
    (corpus / "broken.pdf").write_bytes(b"%PDF-1.4 not really a pdf")
    (corpus / "latin1.txt").write_bytes("caf\xe9 au lait".encode("latin-1"))
    (corpus / "empty.md").write_bytes(b"")
    report = IndexBuilder(_settings(corpus), embedder).build()
    reasons = {s.path: s.reason for s in report.skipped}
    assert set(reasons) == {"broken.pdf", "latin1.txt", "empty.md"}
    assert "UTF-8" in reasons["latin1.txt"] and "empty" in reasons["empty.md"]
    assert report.documents == 2
    assert len(load_bundle(corpus.parent / "index").manifest.skipped) == 3


def test_bundle_of_another_model_or_format_is_refused(corpus: Path, embedder: Embedder) -> None:
    settings = _settings(corpus)
    IndexBuilder(settings, embedder).build()
    with pytest.raises(BundleError, match="re-ingest"):
        load_bundle(settings.index_dir, expected_model="some/other-model")
    manifest_path = settings.index_dir / MANIFEST
    manifest = json.loads(manifest_path.read_text())
    manifest["format_version"] = FORMAT_VERSION + 1
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="format version.*re-ingest"):
        load_bundle(settings.index_dir)


def test_crash_mid_ingest_leaves_the_previous_bundle_intact(corpus: Path, embedder: Embedder) -> None:
    settings = _settings(corpus)
    IndexBuilder(settings, embedder).build()
    before = (settings.index_dir / MANIFEST).read_text()

    # Enough new text that embedding takes a while, then kill -9 the ingest mid-way.
    for i in range(40):
        (corpus / f"bulk-{i}.txt").write_text(
            f"Leaflet {i}\n\n" + " ".join(f"Sentence {j} of leaflet {i} about dosing." for j in range(120)),
            encoding="utf-8",
        )
    proc = subprocess.Popen(
        [sys.executable, "-m", "qa_service", "ingest", str(corpus), "--index", str(settings.index_dir)],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    staging: list[Path] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        staging = [p for p in settings.index_dir.parent.glob(".index.staging-*") if (p / "documents.jsonl").exists()]
        if staging:
            break
        time.sleep(0.05)
    assert staging, "the ingest finished before it could be interrupted"
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)

    assert (settings.index_dir / MANIFEST).read_text() == before
    bundle = load_bundle(settings.index_dir)
    assert set(bundle.documents) == {"baclosan-tablets-leaflet", "baclofen-how-long-in-system"}
    assert staging[0].exists()  # the half-written staging folder is left beside it...

    report = IndexBuilder(settings, embedder).build()  # ...and the next ingest clears it
    assert report.documents == 42
    assert not list(settings.index_dir.parent.glob(".index.staging-*"))
