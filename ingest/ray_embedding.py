"""Embedding on a Ray cluster: the expensive step of ingest, spread over its workers.

:class:`RayEncoder` is a :class:`~ingest.embedding.VectorEncoder` like the local
:class:`~ingest.embedding.Embedder`, so the index builder is the same either way:
the driver reads, splits and orders the corpus and writes the bundle; only the
texts to embed go to the cluster. They are put in the order the local embedder
encodes them (shortest first), cut into shards of whole batches, and handed by a
``ray.util.ActorPool`` to actors that each hold the model (loaded by path from
the worker's own installed package, as :class:`Embedder` does). Each shard's rows
go back to their places, so the vectors are those of a single-process build, batch
for batch. Ray restarts a worker that dies and re-runs its shard.

Ray is an optional extra (``pip install -e '.[ray]'``); it is imported only here
and only when a cluster is asked for.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

import numpy as np

from .embedding import Embedder, length_order

RAY_EXTRA_HINT = "install the ray extra: pip install -e '.[ray]'"
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
"""Set on every worker of the job: nothing may download a model there either."""
CONNECT_TIMEOUT = 10.0
"""Seconds to wait for a cluster's port before giving up (Ray itself would wait minutes)."""


class RayIngestError(Exception):
    """Ray is not installed, the cluster can't be reached, or embedding on it failed."""


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise RayIngestError(f"ray is not installed; {RAY_EXTRA_HINT}") from None
    return ray


def _check_reachable(address: str) -> None:
    """Fail fast with a clear message when nothing listens at ``[ray://]host:port``."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise RayIngestError(
            f"invalid Ray address {address!r}: use 'auto', 'local', 'ray://HOST:10001' or 'HOST:6379'"
        )
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT).close()
    except OSError as exc:
        raise RayIngestError(f"cannot reach the Ray cluster at {address}: {exc.strerror or exc}") from None


def connect(address: str, num_cpus: int | None = None) -> bool:
    """Join the Ray cluster at ``address``; True if this call connected (and so should shut down).

    ``address`` is ``auto`` (the cluster this machine is part of, or ``RAY_ADDRESS``),
    ``local`` (start a Ray on this machine with ``num_cpus`` CPUs, all by default),
    ``ray://HOST:10001`` (Ray Client) or ``HOST:6379`` (the head node's GCS).
    If Ray is already initialised in this process, that connection is used.
    """
    ray = _ray()
    if ray.is_initialized():
        return False
    runtime_env = {"env_vars": OFFLINE_ENV}
    try:
        if address == "local":
            # address="local": a new Ray on this machine, even when RAY_ADDRESS names a cluster
            ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, runtime_env=runtime_env,
                     log_to_driver=False)
        else:
            if address != "auto":
                _check_reachable(address)
            ray.init(address=address, runtime_env=runtime_env, log_to_driver=False)
    except (ConnectionError, RuntimeError) as exc:  # RuntimeError: e.g. another Ray or Python version
        raise RayIngestError(f"cannot join the Ray cluster at {address!r}: {exc}") from None
    return True


class EmbeddingWorker:
    """A Ray actor's state: one loaded model, embedding one shard of texts per call."""

    def __init__(self, model: str, batch_size: int, device: str) -> None:
        self.embedder = Embedder(model, batch_size, device)
        self.embedder.warm_up()

    def dimension(self) -> int:
        return self.embedder.dimension

    def embed(self, shard: int, texts: list[str]) -> tuple[int, np.ndarray]:
        return shard, self.embedder.embed(texts)


def _short(error: Exception) -> str:
    """A remote error's first and last lines, without the worker's traceback between."""
    lines = [line for line in str(error).splitlines() if line.strip()]
    return " … ".join(dict.fromkeys([lines[0], lines[-1]])) if lines else type(error).__name__


class RayEncoder:
    """Embeds on ``workers`` Ray actors, each holding the model; use it as a context manager.

    ``with RayEncoder(model, address="auto") as encoder: IndexBuilder(settings, encoder).build()``
    connects (unless Ray is already initialised), starts the actors on first use, and
    on exit stops them (and disconnects if it connected). ``workers`` defaults to one
    per ``cpus_per_worker`` CPUs of the cluster, or per ``gpus_per_worker`` GPUs when
    that is set (the model then runs on each worker's CUDA device). ``shard_size`` is
    the number of texts a worker takes at a time, rounded up to whole batches.
    """

    def __init__(
        self,
        model: str,
        batch_size: int = 32,
        *,
        address: str = "auto",
        workers: int | None = None,
        cpus_per_worker: float = 1,
        gpus_per_worker: float = 0,
        shard_size: int = 1024,
    ) -> None:
        self.model = model
        self.batch_size = batch_size
        self.address = address
        self.workers = workers
        self.cpus_per_worker = cpus_per_worker
        self.gpus_per_worker = gpus_per_worker
        self.shard_size = -(-max(shard_size, 1) // batch_size) * batch_size
        self._actors: list[Any] = []
        self._connected = False
        self._dimension: int | None = None

    def __enter__(self) -> RayEncoder:
        self._connected = connect(self.address)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop the actors, and disconnect from Ray if :meth:`__enter__` connected."""
        ray = _ray()
        for actor in self._actors:
            ray.kill(actor)
        self._actors = []
        if self._connected:
            ray.shutdown()
            self._connected = False

    def _worker_count(self) -> int:
        if self.workers is not None:
            return max(1, self.workers)
        resources = _ray().cluster_resources()
        if self.gpus_per_worker > 0:
            return max(1, int(resources.get("GPU", 0) // self.gpus_per_worker))
        return max(1, int(resources.get("CPU", 1) // self.cpus_per_worker))

    def _pool(self) -> list[Any]:
        """The actors, started on first use (each loads the model once)."""
        if not self._actors:
            ray = _ray()
            if not ray.is_initialized():
                self._connected = connect(self.address)
            actor_class = ray.remote(
                num_cpus=self.cpus_per_worker,
                num_gpus=self.gpus_per_worker,
                max_restarts=2,
                max_task_retries=2,
            )(EmbeddingWorker)
            device = "cuda" if self.gpus_per_worker > 0 else "cpu"
            self._actors = [
                actor_class.remote(self.model, self.batch_size, device) for _ in range(self._worker_count())
            ]
        return self._actors

    @property
    def dimension(self) -> int:
        if self._dimension is None:
            ray = _ray()
            try:
                self._dimension = int(ray.get(self._pool()[0].dimension.remote()))
            except ray.exceptions.RayError as exc:
                raise RayIngestError(f"the Ray workers could not load the model: {_short(exc)}") from None
        return self._dimension

    def embed(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Unit-length float32 vectors, row i for ``texts[i]``; ``progress(n)`` as each shard returns."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        ray = _ray()
        from ray.util import ActorPool

        order = length_order(texts)
        shards = [order[begin:begin + self.shard_size] for begin in range(0, len(texts), self.shard_size)]

        def submit(actor: Any, number: int) -> Any:
            """Called as an actor frees up, so only the shards in flight are copied out."""
            return actor.embed.remote(number, [texts[i] for i in shards[number]])

        out: np.ndarray | None = None
        try:
            for number, vectors in ActorPool(self._pool()).map_unordered(submit, range(len(shards))):
                if out is None:
                    out = np.zeros((len(texts), vectors.shape[1]), dtype=np.float32)
                out[shards[number]] = vectors
                if progress is not None:
                    progress(len(shards[number]))
        except ray.exceptions.RayError as exc:
            raise RayIngestError(f"embedding on the Ray cluster failed: {_short(exc)}") from None
        assert out is not None
        return out
