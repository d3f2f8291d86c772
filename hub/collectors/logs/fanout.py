"""Reads over several log stores: a cluster with its own store (``logs.mode own``) is asked
there, every other cluster in the hub's shared store, and the answers are merged.

Why a module of its own: the logs service keeps its scoping and auditing; what differs with
several stores is only how the per-cluster queries are run (each distinct store at most once at
a time, at most :data:`MAX_STORE_FANOUT` stores at once, one slow store never holding the others
up beyond its own timeout) and what a store that is down does to the answer:

- it is the only store asked (one cluster, or every cluster asked lives in the same store), or
  no store asked answered: the read fails with the store's own 503 (a cluster's own store is
  named ``log store of cluster <name>``);
- another store answered: the answer stands on the stores that answered and says which
  clusters were left out (``unavailable``: cluster and reason; ``partial: true``), as the
  monitoring area's cross-cluster tables do.

Pure of any backend: it sees stores only through :class:`~hub.collectors.logs.store.LogStore`.
"""

from __future__ import annotations

import heapq
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from typing import Any, Generic, TypeVar

from hub.collectors.logs.store import (
    TOTAL_CAP,
    Bucket,
    LogLine,
    LogQuery,
    LogRecord,
    LogStore,
    Partition,
    SearchResult,
)
from hub.errors import BackendUnavailable

# Distinct stores asked at the same time by one service (a thread each); further ones queue.
MAX_STORE_FANOUT = 4

R = TypeVar("R")


class ClusterLogStore:
    """A cluster's own store: the backend's outages are named ``log store of cluster <name>``
    (the user reads which cluster's store is down, not just "elasticsearch")."""

    def __init__(self, cluster: str, inner: LogStore) -> None:
        self.cluster = cluster
        self.inner = inner
        self.name = f"log store of cluster {cluster}"

    def _named(self, exc: BackendUnavailable) -> BackendUnavailable:
        detail = exc.message
        lead = f"{exc.backend} is unavailable: "
        if detail.startswith(lead):
            detail = f"{exc.backend}: {detail[len(lead) :]}"
        return BackendUnavailable(self.name, detail)

    def _call(self, fn: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        try:
            return fn(*args, **kwargs)
        except BackendUnavailable as exc:
            raise self._named(exc) from exc

    def write(self, records: Sequence[LogRecord]) -> int:
        return self._call(self.inner.write, records)

    def refresh(self) -> None:
        self._call(self.inner.refresh)

    def search(self, query: LogQuery) -> SearchResult:
        return self._call(self.inner.search, query)

    def histogram(self, query: LogQuery, *, interval: float) -> list[Bucket]:
        return self._call(self.inner.histogram, query, interval=interval)

    def export(self, query: LogQuery, *, limit: int) -> Iterator[LogLine]:
        stream = self._call(self.inner.export, query, limit=limit)
        while True:
            try:
                line = next(stream)
            except StopIteration:
                return
            except BackendUnavailable as exc:
                raise self._named(exc) from exc
            yield line

    def partitions(self) -> list[Partition]:
        return self._call(self.inner.partitions)

    def drop_before(self, day: str) -> list[str]:
        return self._call(self.inner.drop_before, day)

    def drop_namespace_before(self, namespace: str, day: str, *, clusters: tuple[str, ...] | None = None) -> int:
        return self._call(self.inner.drop_namespace_before, namespace, day, clusters=clusters)

    def probe(self) -> str:
        return self._call(self.inner.probe)

    def close(self) -> None:
        self.inner.close()


@dataclass(frozen=True)
class StorePart:
    """One cluster's share of a read: the cluster's name, the store that holds its lines and
    the query scoped by the caller's view of that cluster (``name`` "": a platform admin's
    read of the whole shared store)."""

    name: str
    store: LogStore
    query: LogQuery


@dataclass(frozen=True)
class Unavailable:
    """A cluster left out of an answer because its store did not answer."""

    cluster: str
    backend: str
    error: str

    def to_dict(self) -> dict[str, str]:
        return {"cluster": self.cluster, "backend": self.backend, "error": self.error}


@dataclass(frozen=True)
class Gathered(Generic[R]):
    """Each answering part with its answer, in the parts' order, and the clusters left out."""

    answers: list[tuple[StorePart, R]]
    unavailable: list[Unavailable]


class FanOut:
    """Runs one operation over the parts of a read: each store's parts one after the other
    (a down store fails the rest of its parts at once instead of timing out on each), distinct
    stores in parallel on a small pool (:data:`MAX_STORE_FANOUT` threads, made on first use)."""

    def __init__(self, max_workers: int = MAX_STORE_FANOUT) -> None:
        self.max_workers = max_workers
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self.max_workers, thread_name_prefix="log-fanout")
            return self._pool

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def run(self, parts: Sequence[StorePart], op: Callable[[StorePart], R]) -> Gathered[R]:
        """``op`` over every part; raises when :func:`settle` says the read cannot stand."""
        groups: dict[int, list[int]] = {}
        for i, part in enumerate(parts):
            groups.setdefault(id(part.store), []).append(i)
        outcome: list[R | BackendUnavailable | None] = [None] * len(parts)

        def one_store(indices: list[int]) -> None:
            for n, i in enumerate(indices):
                try:
                    outcome[i] = op(parts[i])
                except BackendUnavailable as exc:
                    for j in indices[n:]:
                        outcome[j] = exc
                    return

        if len(groups) == 1:
            one_store(next(iter(groups.values())))
        else:
            pool = self._executor()
            futures: list[Future[None]] = [pool.submit(one_store, idx) for idx in groups.values()]
            for f in futures:
                f.result()  # anything but an outage (a bad query) is the caller's error
        answers: list[tuple[StorePart, R]] = []
        failed: list[tuple[StorePart, BackendUnavailable]] = []
        for part, got in zip(parts, outcome, strict=True):
            if isinstance(got, BackendUnavailable):
                failed.append((part, got))
            else:
                answers.append((part, got))  # type: ignore[arg-type]
        return Gathered(answers, settle(parts, answers, failed))


def settle(
    parts: Sequence[StorePart],
    answers: Sequence[tuple[StorePart, Any]],
    failed: Sequence[tuple[StorePart, BackendUnavailable]],
) -> list[Unavailable]:
    """The clusters left out, or the 503 when the read cannot stand without them: a down store
    was the only store asked, or no store answered."""
    if not failed:
        return []
    stores = {id(p.store) for p in parts}
    if len(stores) == 1 or not answers:
        first = failed[0][1]
        backends = list(dict.fromkeys(exc.backend for _, exc in failed))
        if len(backends) == 1:
            raise first
        reasons = "; ".join(dict.fromkeys(exc.message for _, exc in failed))
        raise BackendUnavailable(", ".join(backends), reasons)
    return [Unavailable(p.name, exc.backend, exc.message) for p, exc in failed]


def merge_search(
    answers: Sequence[tuple[StorePart, SearchResult]], *, offset: int, size: int, desc: bool
) -> SearchResult:
    """One page out of each part's first ``offset + size`` lines (as asked by the caller),
    merged by time: the page a single store holding every part's lines would give (lines of
    the same time keep the parts' order). ``total`` is their sum, exact up to
    :data:`~hub.collectors.logs.store.TOTAL_CAP` and "at least" that beyond it, as one store
    counts."""
    merged = heapq.merge(*(r.items for _, r in answers), key=lambda line: line.time, reverse=desc)
    total = sum(r.total for _, r in answers)
    exact = all(r.total_exact for _, r in answers) and total <= TOTAL_CAP
    return SearchResult(
        items=list(islice(merged, offset, offset + size)), total=min(total, TOTAL_CAP), total_exact=exact
    )
