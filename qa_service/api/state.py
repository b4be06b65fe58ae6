"""The loaded service behind the routes: loaded in the background at start, swapped whole on reload."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from ingest.bundle import BundleError, read_manifest

from ..answering import Answerer
from ..service import ServiceError, build_answerer
from ..settings import ApiKeysError, ServiceSettings
from .errors import problem
from .metrics import RELOADS, show_index

log = logging.getLogger("qa_service")


class ReloadError(Exception):
    """The bundle on disk can't replace the one being served; the message says why (the old one serves on)."""


@dataclass(frozen=True)
class ReloadOutcome:
    changed: bool
    """False when the bundle on disk is the one already served (same version)."""
    index_version: str
    previous_version: str | None
    documents: int
    chunks: int
    took_s: float


def _version_on_disk(settings: ServiceSettings) -> str | None:
    """The version of the bundle in the index folder, from its manifest alone (None: unreadable)."""
    try:
        return read_manifest(settings.index_dir).version
    except (BundleError, OSError, ValueError):
        return None


class ServiceState:
    """Holds the answerer the routes use, and the API keys.

    A reload builds a complete new answerer beside the old one (bundle read and
    checked, model loaded) and only then swaps one reference: a request in
    flight keeps the answerer it started with and finishes on it, a request
    arriving after the swap gets the new one, and a bundle that fails to load
    leaves the old one serving. Reloads run one at a time.
    """

    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self.answerer: Answerer | None = None
        self.error: str | None = None
        self.api_keys: frozenset[str] = settings.read_api_keys()
        self._thread: threading.Thread | None = None
        self._reloading = threading.Lock()

    def start_loading(self) -> None:
        self._thread = threading.Thread(target=self._load, name="index-loader", daemon=True)
        self._thread.start()

    def _load(self) -> None:
        try:
            self.reload()
        except ReloadError as exc:
            self.error = f"the index failed to load: {exc}"
            log.error("index not loaded: %s", exc)
        except Exception as exc:  # a loader thread that dies unreported would leave readiness "loading" for ever
            self.error = f"the index failed to load: unexpected error ({type(exc).__name__}: {exc})"
            log.exception("index not loaded")

    def wait(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def require(self) -> Answerer:
        answerer = self.answerer
        if answerer is None:
            message = self.error or "the index is still loading; try again shortly"
            raise problem(503, "not_ready", message)
        return answerer

    def reload(self) -> ReloadOutcome:
        """Load the bundle at the index folder and serve it from now on (blocking: call from a thread)."""
        with self._reloading:
            began = time.perf_counter()
            old = self.answerer
            try:
                self.api_keys = self.settings.read_api_keys()
                if old is not None and _version_on_disk(self.settings) == old.index_version:
                    RELOADS.labels("unchanged").inc()
                    return ReloadOutcome(False, old.index_version, old.index_version, len(old.bundle.documents),
                                         len(old.bundle.chunks), round(time.perf_counter() - began, 3))
                new = build_answerer(self.settings)
            except (ServiceError, ApiKeysError, OSError) as exc:
                RELOADS.labels("refused").inc()
                raise ReloadError(str(exc)) from None
            bundle = new.bundle
            outcome = ReloadOutcome(
                changed=True,
                index_version=new.index_version,
                previous_version=old.index_version if old is not None else None,
                documents=len(bundle.documents),
                chunks=len(bundle.chunks),
                took_s=round(time.perf_counter() - began, 3),
            )
            self.answerer, self.error = new, None
            RELOADS.labels("changed").inc()
            show_index(new.index_version, new.models, outcome.documents, outcome.chunks)
            if old is not None:
                old.close()  # its requests in flight finish; nothing new reaches it
            log.info("index loaded: version %s, %d documents, %d chunks (%.2f s)",
                     outcome.index_version, outcome.documents, outcome.chunks, outcome.took_s)
            return outcome

    def reload_and_log(self) -> None:
        """:meth:`reload`, its outcome logged (for SIGHUP, which has nobody to answer)."""
        try:
            outcome = self.reload()
        except ReloadError as exc:
            log.error("index not reloaded, the previous one is still served: %s", exc)
            return
        if not outcome.changed:
            log.info("index unchanged (version %s)", outcome.index_version)

    def close(self) -> None:
        if self.answerer is not None:
            self.answerer.close()
