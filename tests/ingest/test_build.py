"""Ingest end to end on real files: incremental re-ingest, refusal of foreign bundles, crash safety."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ingest.build import IndexBuilder, embed_text
from ingest.bundle import FORMAT_VERSION, MANIFEST, BundleError, load_bundle
from ingest.embedding import Embedder
from ingest.settings import IngestSettings
from tests.conftest import CORPUS, REPO, clean_env, read_line


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


class CountingEmbedder(Embedder):
    """The real embedder, remembering every text it was asked to embed."""

    def __init__(self, model: str) -> None:
        super().__init__(model)
        self.texts: list[str] = []

    def embed(self, texts, progress=None):  # noqa: ANN001, ANN201
        self.texts.extend(texts)
        return super().embed(texts, progress)


def test_reingest_only_embeds_what_changed_and_drops_removed_files(corpus: Path, embedder: Embedder) -> None:
    settings = _settings(corpus)
    IndexBuilder(settings, embedder).build()
    counting = CountingEmbedder(settings.embed_model)
    counting._model = embedder._model  # the same loaded weights, no second load
    unchanged = IndexBuilder(settings, counting).build()
    assert unchanged.up_to_date and unchanged.embedded_documents == 0
    assert counting.texts == []  # the encoder was not called at all

    leaflet = corpus / "baclosan-tablets-leaflet.txt"
    leaflet.write_text(leaflet.read_text(encoding="utf-8") + "\nStorage note\n\nKeep the bottle closed.\n", encoding="utf-8")
    (corpus / "extra.md").write_text("# Extra\n\nBaclofen extra leaflet text.\n", encoding="utf-8")
    changed = IndexBuilder(settings, counting).build()
    assert (changed.embedded_documents, changed.reused_documents) == (2, 1)
    bundle = load_bundle(settings.index_dir)
    # the encoder saw the changed and the new document's chunks and answer units, and nothing of the unchanged one
    changed_docs = {"baclosan-tablets-leaflet", "extra"}
    expected = [embed_text(bundle.documents[c.doc_id], c) for c in bundle.chunks if c.doc_id in changed_docs]
    for doc_id in sorted(changed_docs):
        lo, hi = bundle.unit_range(doc_id)
        text = bundle.documents[doc_id].text
        expected += [text[u["start"]:u["end"]] for u in bundle.units[lo:hi]]
    assert sorted(counting.texts) == sorted(expected)
    # reused unit vectors are the ones a fresh embedding gives, too
    lo, hi = bundle.unit_range("baclofen-how-long-in-system")
    unit = bundle.units[lo + 3]
    fresh_unit = embedder.embed([bundle.documents["baclofen-how-long-in-system"].text[unit["start"]:unit["end"]]])[0]
    assert float(fresh_unit @ bundle.unit_vectors[lo + 3]) > 0.999
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


def test_an_unexpected_error_in_one_document_skips_it_and_builds_the_rest(corpus: Path, embedder: Embedder) -> None:
    from ingest.chunking import SectionChunker

    class FailsOnOne(SectionChunker):
        """The real chunker, failing as a bug would on one document."""

        def split(self, text, sections):  # noqa: ANN001, ANN201
            if "TRIGGER" in text:
                raise RuntimeError("an unforeseen splitter failure")
            return super().split(text, sections)

    (corpus / "odd.txt").write_text("Odd leaflet\n\nTRIGGER text.\n", encoding="utf-8")
    settings = _settings(corpus)
    builder = IndexBuilder(settings, embedder)
    builder.chunker = FailsOnOne(settings.chunk_size, settings.chunk_overlap)
    report = builder.build()
    assert report.documents == 2
    [skipped] = report.skipped
    assert skipped.path == "odd.txt" and "an unforeseen splitter failure" in skipped.reason
    bundle = load_bundle(settings.index_dir)
    assert set(bundle.documents) == {"baclosan-tablets-leaflet", "baclofen-how-long-in-system"}
    assert [(s.path, s.reason) for s in bundle.manifest.skipped] == [(skipped.path, skipped.reason)]


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


# A real ingest in its own process that stops at a known point and waits there
# to be killed: "embedding" (the staging folder is half written) or "swap" (the
# old bundle has been moved aside and the new one is not in place yet).
CRASH_HARNESS = """
import os, sys
from ingest.build import IndexBuilder
from ingest.embedding import Embedder
from ingest.settings import IngestSettings

point = sys.argv[3]

class PausingEmbedder(Embedder):
    def embed(self, texts, progress=None):
        if point == "embedding":
            print("paused", flush=True)
            sys.stdin.readline()
        return super().embed(texts, progress)

real_replace = os.replace
def replace(src, dst):
    real_replace(src, dst)
    if point == "swap":
        print("paused", flush=True)
        sys.stdin.readline()
os.replace = replace

settings = IngestSettings(corpus_dir=sys.argv[1], index_dir=sys.argv[2])
IndexBuilder(settings, PausingEmbedder(settings.embed_model)).build()
"""


@pytest.mark.parametrize("point", ["embedding", "swap"])
def test_kill_9_mid_ingest_leaves_the_previous_bundle_served(corpus: Path, embedder: Embedder, point: str) -> None:
    settings = _settings(corpus)
    IndexBuilder(settings, embedder).build()
    before = (settings.index_dir / MANIFEST).read_text()
    for i in range(3):
        (corpus / f"bulk-{i}.txt").write_text(f"Leaflet {i}\n\nSentence about dosing {i}.\n", encoding="utf-8")

    proc = subprocess.Popen(
        [sys.executable, "-c", CRASH_HARNESS, str(corpus), str(settings.index_dir), point],
        cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env=clean_env(),
    )
    try:
        assert read_line(proc.stdout, timeout=180).strip() == "paused"
        staging = list(settings.index_dir.parent.glob(".index.staging-*"))
        if point == "embedding":
            assert staging and (staging[0] / "documents.jsonl").exists()
            assert (settings.index_dir / MANIFEST).read_text() == before
        else:
            assert not settings.index_dir.exists()  # moved aside: the moment of the swap
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)

    # Whoever reads the index next sees the previous bundle, whole.
    bundle = load_bundle(settings.index_dir)
    assert (settings.index_dir / MANIFEST).read_text() == before
    assert set(bundle.documents) == {"baclosan-tablets-leaflet", "baclofen-how-long-in-system"}

    report = IndexBuilder(settings, embedder).build()  # the next ingest completes and cleans up
    assert report.documents == 5
    assert set(load_bundle(settings.index_dir).documents) >= {"bulk-0", "bulk-1", "bulk-2"}
    assert not list(settings.index_dir.parent.glob(".index.staging-*"))
    assert not list(settings.index_dir.parent.glob(".index.retired-*"))
