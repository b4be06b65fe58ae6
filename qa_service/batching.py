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

A request's texts travel together (one queue item). A thread may have its texts
encoded on their own instead (:func:`encoded_alone`): texts encoded with others
come out a few units in the 8th digit apart from the same texts encoded alone
(the model's matrix products are summed in another order), which can move a
score's last digit. The lines of a batch request are encoded alone, each in its
worker thread (so a few at once, on both cores: with 2 cores, two single-text
encodes side by side outrun one batch of them), and each equals the single call
made alone, whatever else the server was encoding and on every run.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from contextvars import ContextVar

import numpy as np

from ingest.embedding import VectorEncoder


_ALONE: ContextVar[dict[tuple[str, ...], np.ndarray] | None] = ContextVar("encoded_alone", default=None)


@contextlib.contextmanager
def encoded_alone(memo: dict[tuple[str, ...], np.ndarray] | None = None) -> Iterator[None]:
    """Within it, this thread's texts are encoded without other requests', in this thread (beside the
    encoder thread and other such threads): the vectors are exactly those of a request served alone. So
    texts encoded once are the same the next time, and are taken from ``memo`` when given (the lines
    of one batch asking the same question under other options encode it once)."""
    token = _ALONE.set(memo if memo is not None else {})
    try:
        yield
    finally:
        _ALONE.reset(token)


_Item = tuple[tuple[str, ...], "Future[np.ndarray]"]
"""A request's texts, and where their vectors go."""


class BatchingEncoder:
    """An :class:`~ingest.embedding.Embedder` for many threads at once (same ``embed`` contract)."""

    def __init__(self, embedder: VectorEncoder, max_batch: int = 32) -> None:
        self.embedder = embedder
        self.model = embedder.model
        self.backend = getattr(embedder, "backend", "torch")
        self.max_batch = max_batch
        # Texts encoded alone are encoded in their callers' threads, side by side where the encoder allows it
        # (the ONNX encoder does; sentence-transformers' tokenizer is not made for it: one at a time).
        self._alone_turn = contextlib.nullcontext() if getattr(embedder, "thread_safe", False) else threading.Lock()
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
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
        key, memo = tuple(texts), _ALONE.get()
        if memo is not None:  # alone: in this thread, beside the encoder thread and other such callers
            if key not in memo:
                unique = list(dict.fromkeys(key))
                row = {text: i for i, text in enumerate(unique)}
                with self._alone_turn:
                    memo[key] = self.embedder.embed(unique)[[row[text] for text in key]]
            vectors = memo[key].copy()
            if progress is not None:
                progress(len(texts))
            return vectors
        future: Future[np.ndarray] = Future()
        with self._closing:
            if self._closed:  # a request still holding a replaced index: encoded in its own thread
                return self.embedder.embed(texts, progress)
            self._queue.put((key, future))
        vectors = future.result()
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

    def _encode(self, batch: list[_Item]) -> None:
        # Identical texts asked at once (a help desk's common question) are encoded once.
        unique = list(dict.fromkeys(text for texts, _ in batch for text in texts))
        try:
            vectors = self.embedder.embed(unique)
        except BaseException as exc:  # noqa: BLE001 - handed to every waiting request
            for _, future in batch:
                future.set_exception(exc)
            return
        row = {text: i for i, text in enumerate(unique)}
        for texts, future in batch:
            future.set_result(vectors[[row[text] for text in texts]])
        self.batches += 1
        self.encoded += len(unique)
