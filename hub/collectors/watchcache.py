"""An in-memory mirror of cluster objects, kept by LIST + WATCH (the informer pattern).

Per resource kind one thread lists everything (in pages), remembers the list's
resourceVersion, then watches from it, applying ADDED/MODIFIED/DELETED events and moving the
version forward (BOOKMARK events move it without an object). When the server says the version
is too old (410 Gone) the thread lists again; when the server cannot be reached it backs off
and marks the kind stale, and keeps serving what it has. Reads never go to the API server.

The source of lists and watches is a protocol (:class:`KubeSource`): ``kubernetes.py``
implements it over the official client; the unit tests implement it with scripted events.

Over 400 lines because the store (indexes, versions, freshness) and the watch thread that
feeds it (list, watch, 410 Gone, back-off) are one protocol and are tested as one.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from hub.errors import BackendUnavailable
from hub.timeutil import Clock, iso

log = logging.getLogger("kubehub.cluster.watch")

Key = tuple[str, str]


@dataclass(frozen=True)
class ResourceKind:
    """One watched resource: where it lives in the API and how its JSON becomes a domain object."""

    name: str  # plural, as in the URL: "pods"
    kind: str  # "Pod"
    api: str  # "/api/v1" or "/apis/apps/v1"
    namespaced: bool
    parse: Callable[[Mapping[str, Any]], Any]
    # Ask the server for PartialObjectMetadata: the object's data never leaves the API server.
    metadata_only: bool = False
    # Secondary indexes: name -> function giving the index values of an object.
    indexes: Mapping[str, Callable[[Any], Iterable[str]]] = field(default_factory=dict)
    # A LIST answer's JSON bytes -> its objects, skipping the dicts (``kube_decode``); for the
    # kinds a big cluster has tens of thousands of. None: ``json.loads`` and ``parse``.
    decode_list: Callable[[bytes], list[Any]] | None = None


@dataclass
class ListPage:
    items: list[dict[str, Any]]
    resource_version: str
    continue_token: str | None = None
    # The page's objects, decoded when called: the source returns the page as soon as it knows
    # the continue token, and the cache fetches the next page while it decodes this one.
    decode: Callable[[], list[Any]] | None = None


@dataclass
class WatchEvent:
    type: str  # ADDED | MODIFIED | DELETED | BOOKMARK
    object: dict[str, Any]


class WatchExpired(Exception):
    """The resourceVersion asked for is gone from the server's history (HTTP 410): list again."""


class KubeSource(Protocol):
    def list_page(
        self, kind: ResourceKind, *, limit: int, continue_token: str | None, resource_version: str = ""
    ) -> ListPage:
        """One page of a LIST. Raises WatchExpired when a continue token has expired.
        ``resource_version`` "0": any version the server has at hand (its watch cache) will do."""
        ...

    def watch(self, kind: ResourceKind, *, resource_version: str, timeout_seconds: int) -> Iterator[WatchEvent]:
        """Open a WATCH (connected when this returns) and iterate its events until the server ends
        it. Raises WatchExpired for 410 (on open or as an ERROR event), BackendUnavailable when
        the server cannot be reached."""
        ...

    def interrupt(self) -> None:
        """Close every open watch stream so that threads blocked on them return (used by stop)."""
        ...


def _rv_number(rv: str) -> int | None:
    """Resource versions are opaque, but etcd-backed servers give integers; only then do we
    compare them (to keep a write's answer from being overwritten by an older watch event)."""
    try:
        return int(rv)
    except (TypeError, ValueError):
        return None


class Store:
    """The objects of one kind, by (namespace, name), with a per-namespace map and indexes.

    Writers are the kind's watch thread (and ``offer`` from write calls); readers take the lock
    only to copy references out, so a request never waits on a LIST.
    """

    def __init__(self, kind: ResourceKind) -> None:
        self.kind = kind
        self._lock = threading.RLock()
        self._objects: dict[Key, Any] = {}
        self._by_ns: dict[str, dict[str, Any]] = {}
        self._index: dict[str, dict[str, dict[Key, Any]]] = {n: {} for n in kind.indexes}
        # Per index value, the tick of its last change: lets readers cache what they derive
        # from a bucket (a node's requested resources) until that bucket changes.
        self._changed: dict[str, dict[str, int]] = {n: {} for n in kind.indexes}
        # Per namespace ("" for cluster-scoped kinds), the tick of its last change: lets readers
        # keep a sorted listing of a namespace until something in it changes.
        self._ns_changed: dict[str, int] = {}
        self._tick = 0
        self.synced = threading.Event()
        self.resource_version = ""
        self.last_sync: float | None = None
        self.last_event: float | None = None
        self.stale_since: float | None = None
        self.error: str | None = None
        self.relists = 0
        self.reconnects = 0

    # -- writes (watch thread) ------------------------------------------------------------------
    def _add_locked(self, obj: Any) -> None:
        key: Key = obj.key
        old = self._objects.get(key)
        if old is not None:
            self._remove_locked(key)
        self._objects[key] = obj
        self._by_ns.setdefault(key[0], {})[key[1]] = obj
        self._tick += 1
        self._ns_changed[key[0]] = self._tick
        for name, fn in self.kind.indexes.items():
            idx = self._index[name]
            changed = self._changed[name]
            for value in fn(obj):
                idx.setdefault(value, {})[key] = obj
                self._tick += 1
                changed[value] = self._tick

    def _remove_locked(self, key: Key) -> Any:
        old = self._objects.pop(key, None)
        if old is None:
            return None
        ns_map = self._by_ns.get(key[0])
        if ns_map is not None:
            ns_map.pop(key[1], None)
            if not ns_map:
                del self._by_ns[key[0]]
        self._tick += 1
        self._ns_changed[key[0]] = self._tick
        for name, fn in self.kind.indexes.items():
            idx = self._index[name]
            changed = self._changed[name]
            for value in fn(old):
                bucket = idx.get(value)
                if bucket is not None:
                    bucket.pop(key, None)
                    if not bucket:
                        del idx[value]
                self._tick += 1
                changed[value] = self._tick
        return old

    def replace(self, objects: Iterable[Any], resource_version: str) -> None:
        """Swap in a complete LIST result: objects missing from it were deleted meanwhile."""
        with self._lock:
            self._objects.clear()
            self._by_ns.clear()
            for idx in self._index.values():
                idx.clear()
            for changed in self._changed.values():
                for value in changed:  # the tick keeps growing, so no old value can come back
                    self._tick += 1
                    changed[value] = self._tick
            for ns in self._ns_changed:
                self._tick += 1
                self._ns_changed[ns] = self._tick
            for obj in objects:
                self._add_locked(obj)
            self.resource_version = resource_version

    def apply(self, event_type: str, obj: Any) -> None:
        with self._lock:
            if event_type == "DELETED":
                self._remove_locked(obj.key)
            else:
                self._add_locked(obj)

    def offer(self, obj: Any) -> None:
        """Take an object a write call returned, unless the cache already holds a newer one.

        This gives read-your-writes: the console shows the scaled Deployment at once instead
        of after the watch event arrives.
        """
        with self._lock:
            current = self._objects.get(obj.key)
            if current is not None:
                new_rv, old_rv = _rv_number(obj.resource_version), _rv_number(current.resource_version)
                if new_rv is None or old_rv is None or new_rv <= old_rv:
                    return
            self._add_locked(obj)

    def forget(self, key: Key) -> None:
        with self._lock:
            self._remove_locked(key)

    # -- reads ------------------------------------------------------------------------------------
    def get(self, namespace: str, name: str) -> Any:
        return self._objects.get((namespace, name))

    def values(self, namespace: str | None = None) -> list[Any]:
        with self._lock:
            if namespace is None:
                return list(self._objects.values())
            return list(self._by_ns.get(namespace, {}).values())

    def by_index(self, index: str, value: str) -> list[Any]:
        with self._lock:
            return list(self._index[index].get(value, {}).values())

    def index_version(self, index: str, value: str) -> int:
        """Changes whenever the bucket of ``value`` changes (an object added, removed or replaced)."""
        return self._changed[index].get(value, 0)

    def namespace_version(self, namespace: str) -> int:
        """Changes whenever an object of ``namespace`` ("" for cluster-scoped kinds) is added,
        removed or replaced."""
        return self._ns_changed.get(namespace, 0)

    def index_keys(self, index: str) -> list[str]:
        with self._lock:
            return list(self._index[index])

    def count(self, namespace: str | None = None) -> int:
        if namespace is None:
            return len(self._objects)
        return len(self._by_ns.get(namespace, {}))

    def namespaces(self) -> list[str]:
        with self._lock:
            return list(self._by_ns)

    def freshness(self) -> dict[str, Any]:
        return {
            "resource": self.kind.name,
            "synced": self.synced.is_set(),
            "objects": len(self._objects),
            "resource_version": self.resource_version,
            "last_sync": iso(self.last_sync) if self.last_sync else None,
            "last_event": iso(self.last_event) if self.last_event else None,
            "stale_since": iso(self.stale_since) if self.stale_since else None,
            "error": self.error,
            "relists": self.relists,
            "reconnects": self.reconnects,
        }


@dataclass
class Backoff:
    """Exponential back-off with jitter, so that a fleet of hubs does not reconnect in step."""

    initial: float = 0.5
    maximum: float = 10.0  # caps how long after the API server returns the cache stays stale
    factor: float = 2.0
    jitter: float = 0.2
    _next: float = 0.0
    rng: random.Random = field(default_factory=random.Random)

    def reset(self) -> None:
        self._next = 0.0

    def next(self) -> float:
        self._next = self.initial if self._next == 0 else min(self.maximum, self._next * self.factor)
        return self._next * (1 + self.rng.uniform(-self.jitter, self.jitter))


class WatchCache:
    """Stores for every kind, and the threads that keep them current."""

    def __init__(
        self,
        source: KubeSource,
        kinds: Iterable[ResourceKind],
        *,
        clock: Clock,
        resync_seconds: float = 600.0,
        watch_timeout: int = 290,  # below the API server's own 5-10 min cap, so we end it cleanly
        page_size: int = 500,  # the page size kubectl and client-go informers use
        backoff: Callable[[], Backoff] = Backoff,
    ) -> None:
        self.source = source
        self.clock = clock
        self.resync_seconds = resync_seconds
        self.watch_timeout = watch_timeout
        self.page_size = page_size
        self.min_rewatch_delay = 1.0
        self.stores: dict[str, Store] = {k.name: Store(k) for k in kinds}
        self._backoff = {name: backoff() for name in self.stores}
        self._needs_list = dict.fromkeys(self.stores, True)
        self._listeners: dict[str, list[Callable[[str, Any], None]]] = {name: [] for name in self.stores}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._start_lock = threading.Lock()

    def __getitem__(self, name: str) -> Store:
        return self.stores[name]

    def subscribe(self, name: str, listener: Callable[[str, Any], None]) -> None:
        """Call ``listener(event_type, obj)`` from the watch thread after each change of a kind
        (every listed object counts as ADDED). Listeners must be quick and must not block."""
        self._listeners[name].append(listener)

    def _notify(self, name: str, event_type: str, obj: Any) -> None:
        for listener in self._listeners[name]:
            try:
                listener(event_type, obj)
            except Exception:  # a listener's bug must not stop the cache
                log.exception("a listener of %s failed", name)

    # -- lifecycle ----------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return bool(self._threads) and not self._stop.is_set()

    def start(self) -> None:
        with self._start_lock:
            if self._threads:
                return
            self._stop.clear()
            for name in self.stores:
                t = threading.Thread(target=self._run, args=(name,), name=f"kubehub-watch-{name}", daemon=True)
                self._threads.append(t)
                t.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self.source.interrupt()
        for t in self._threads:
            t.join(timeout)
        self._threads = []

    def _run(self, name: str) -> None:
        while not self._stop.is_set():
            try:
                delay = self.step(name)
            except Exception:  # a bug must not end the thread: log it and try again later
                log.exception("watch loop for %s failed unexpectedly", name)
                delay = self._backoff[name].next()
            if delay:
                self._stop.wait(delay)

    # -- one round of list/watch -------------------------------------------------------------
    def step(self, name: str) -> float:
        """List if needed, then watch until the stream ends. Returns seconds to wait before the
        next round (0 after a clean end, the back-off after a failure)."""
        store = self.stores[name]
        kind = store.kind
        try:
            if (
                not self._needs_list[name]
                and store.last_sync is not None
                and self.clock.now() - store.last_sync >= self.resync_seconds
            ):
                self._needs_list[name] = True
            if self._needs_list[name]:
                self._list(store)
            opened = time.monotonic()
            stream = self.source.watch(
                kind, resource_version=store.resource_version, timeout_seconds=self.watch_timeout
            )
            self._mark_ok(store)
            events = 0
            for event in stream:
                if self._stop.is_set():
                    break
                self._apply(store, event)
                events += 1
            if events == 0 and time.monotonic() - opened < 1.0:
                # A server that accepts watches and ends them at once would otherwise spin this loop.
                return self.min_rewatch_delay
            return 0.0
        except WatchExpired:
            log.info("%s: resourceVersion %s expired; listing again", name, store.resource_version)
            self._needs_list[name] = True
            store.relists += 1
            return 0.0
        except Exception as exc:
            if self._stop.is_set():
                return 0.0
            self._mark_failed(store, exc)
            return self._backoff[name].next()

    def _list(self, store: Store) -> None:
        """Every page of a LIST, then one swap into the store. The next page is fetched (by a
        helper thread) while this one is decoded: the API server's work and ours overlap."""
        kind = store.kind
        # The first LIST asks for resourceVersion 0, as client-go's informers do: the API server
        # answers from its watch cache (at 20,000 pods 1.1 CPU-s instead of 2.1-2.9 for pages
        # read from etcd), in one answer. The watch then brings the cache up to date. Later
        # LISTs (after 410 Gone, the periodic resync) ask for the latest state.
        rv = "0" if store.last_sync is None else ""
        while True:
            objects, page = self._list_pages(kind, rv)
            if page is not None:
                break
            rv = ""  # the paged snapshot expired: start over at the latest state
        store.replace(objects, page.resource_version)
        if self._listeners[store.kind.name]:
            for obj in objects:
                self._notify(store.kind.name, "ADDED", obj)
        now = self.clock.now()
        store.last_sync = now
        self._needs_list[store.kind.name] = False
        store.synced.set()
        self._mark_ok(store)

    def _fetch_ahead(self, kind: ResourceKind, token: str | None, rv: str = "") -> Callable[[], ListPage]:
        """Start fetching a page on a daemon thread (a LIST in flight must not hold up the
        process's exit, as an executor's thread would); returns a call that waits for it."""
        box: dict[str, Any] = {}
        done = threading.Event()

        def fetch() -> None:
            try:
                box["page"] = self.source.list_page(
                    kind, limit=self.page_size, continue_token=token, resource_version=rv
                )
            except BaseException as exc:  # handed to the waiting thread, which raises it
                box["error"] = exc
            finally:
                done.set()

        threading.Thread(target=fetch, name=f"kubehub-list-{kind.name}", daemon=True).start()

        def result() -> ListPage:
            done.wait()
            if "error" in box:
                raise box["error"]
            page: ListPage = box["page"]
            return page

        return result

    def _list_pages(self, kind: ResourceKind, rv: str) -> tuple[list[Any], ListPage | None]:
        """(objects, last page); (…, None) when the paged snapshot expired mid-way (start over)."""
        objects: list[Any] = []
        ahead = self._fetch_ahead(kind, None, rv)
        first = True
        while True:
            try:
                page = ahead()
            except WatchExpired:
                if first:
                    raise
                return [], None
            first = False
            if page.continue_token:
                ahead = self._fetch_ahead(kind, page.continue_token)
            if page.decode is not None:
                objects.extend(page.decode())
            else:
                parse = kind.parse
                objects.extend(parse(item) for item in page.items)
            if not page.continue_token:
                return objects, page

    def _apply(self, store: Store, event: WatchEvent) -> None:
        rv = (event.object.get("metadata") or {}).get("resourceVersion")
        if event.type != "BOOKMARK":
            obj = store.kind.parse(event.object)
            store.apply(event.type, obj)
            store.last_event = self.clock.now()
            self._notify(store.kind.name, event.type, obj)
        if rv:
            store.resource_version = rv

    def _mark_ok(self, store: Store) -> None:
        if store.stale_since is not None:
            log.info("%s: API server reachable again; cache current", store.kind.name)
            store.reconnects += 1
        store.stale_since = None
        store.error = None
        self._backoff[store.kind.name].reset()

    def _mark_failed(self, store: Store, exc: BaseException) -> None:
        if store.stale_since is None:
            store.stale_since = self.clock.now()
            log.warning("%s: cache is stale: %s", store.kind.name, exc)
        store.error = exc.message if isinstance(exc, BackendUnavailable) else f"{type(exc).__name__}: {exc}"

    # -- questions about freshness -------------------------------------------------------------
    def stale_since(self, names: Iterable[str] | None = None) -> float | None:
        """The earliest moment any of these kinds lost its API server, or None when all are live."""
        times = [s.stale_since for n, s in self.stores.items() if (names is None or n in names) and s.stale_since]
        return min(times) if times else None

    def wait_synced(self, names: Iterable[str], timeout: float) -> list[str]:
        """Wait up to ``timeout`` for the first LIST of each kind; returns the kinds still missing."""
        deadline = time.monotonic() + timeout  # real waiting, whatever clock the cache reports with
        missing = []
        for n in names:
            store = self.stores[n]
            remaining = max(0.0, deadline - time.monotonic())
            if not store.synced.wait(remaining):
                missing.append(n)
        return missing

    def freshness(self) -> list[dict[str, Any]]:
        return [s.freshness() for s in self.stores.values()]
