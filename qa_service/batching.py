"""Question encodes shared by concurrent requests: dynamic micro-batching.

Encoding one question costs about as much as encoding a dozen together (the
model's arithmetic is a few matrix products whose fixed costs dominate at batch
size one), and two requests encoding at once on two cores only fight over them.
So every request thread hands its texts to one encoder thread and waits; that
thread takes everything queued, encodes it as one batch, hands each request its
rows, and goes again. A request that arrives alone is encoded at once (no
waiting for company); requests that arrive while a batch is being encoded form
the next batch. This is what inference servers call dynamic batching, without
a timer: the queue fills exactly while the model is busy.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future

import numpy as np

from ingest.embedding import VectorEncoder


class BatchingEncoder:
    """An :class:`~ingest.embedding.Embedder` for many threads at once (same ``embed`` contract)."""

    def __init__(self, embedder: VectorEncoder, max_batch: int = 32) -> None:
        self.embedder = embedder
        self.model = embedder.model
        self.backend = getattr(embedder, "backend", "torch")
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[tuple[str, Future[np.ndarray]] | None] = queue.SimpleQueue()
        self._closed = False
        self._closing = threading.Lock()
        self._thread = threading.Thread(target=self._serve, name="query-encoder", daemon=True)
        self._thread.start()
        self.batches = 0
        """Batches encoded so far (for the metrics and the benchmark)."""
        self.encoded = 0
        """Texts encoded so far."""

    def warm_up(self) -> None:
        self.embedder.warm_up()

    @property
    def dimension(self) -> int:
        return self.embedder.dimension

    def embed(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Unit-length float32 vectors, one row per text (blocks until the encoder thread has them)."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        futures: list[Future[np.ndarray]] = []
        with self._closing:
            if self._closed:  # a request still holding a replaced index: encoded in its own thread
                return self.embedder.embed(texts, progress)
            for text in texts:
                future: Future[np.ndarray] = Future()
                self._queue.put((text, future))
                futures.append(future)
        vectors = np.stack([future.result() for future in futures])
        if progress is not None:
            progress(len(texts))
        return vectors

    def close(self) -> None:
        """Stop the encoder thread once the queue is done: texts already queued are encoded, and a
        caller that comes later (a request that took the index before a reload replaced it) encodes
        its own texts in its own thread, so nobody waits for a thread that is gone."""
        with self._closing:
            if self._closed:
                return
            self._closed = True
            self._queue.put(None)
        self._thread.join(timeout=10)

    def _serve(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            stop = False
            while len(batch) < self.max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
            self._encode(batch)
            if stop:
                return

    def _encode(self, batch: list[tuple[str, Future[np.ndarray]]]) -> None:
        # Identical texts asked at once (a help desk's common question) are encoded once.
        unique = list(dict.fromkeys(text for text, _ in batch))
        try:
            vectors = self.embedder.embed(unique)
        except BaseException as exc:  # noqa: BLE001 - handed to every waiting request
            for _, future in batch:
                future.set_exception(exc)
            return
        row = {text: i for i, text in enumerate(unique)}
        for text, future in batch:
            future.set_result(vectors[row[text]])
        self.batches += 1
        self.encoded += len(unique)
