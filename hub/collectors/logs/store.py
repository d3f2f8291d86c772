"""The log store contract: what every backend (embedded SQLite FTS5, Elasticsearch) implements.

Interfaces live here, one module per backend (as APScheduler does it), and one test suite runs
against every backend. The query model is deliberately backend-neutral: the web layer and the
shipper never see SQL or DSL, and tenant scope is part of the query itself (``visibility``) so
that no backend can be asked a question without it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any, Literal, Protocol

from hub.collectors.logs.query import Expr
from hub.errors import InvalidInput

# ``total`` is exact up to this many hits and reported as "at least" beyond it (both backends:
# Elasticsearch gets it as track_total_hits). Counting is what early termination cannot skip:
# at 1M lines an exact count to 10,000 for a tenant holding a third of the lines cost the
# embedded store 20-30 ms per search, to 1,000 it costs 2-3 ms. The histogram gives the shape.
TOTAL_CAP = 1_000
# Deepest hit a page may reach (from + size), as Elasticsearch's index.max_result_window.
MAX_WINDOW = 10_000
MAX_PAGE_SIZE = 1_000
# Histogram answers beyond this many buckets are refused rather than drawn as noise.
MAX_BUCKETS = 10_000
# Longest message kept; kubelet already splits lines at 16 KiB, so this only trims other writers.
MAX_MESSAGE_CHARS = 64 * 1024

Sort = Literal["desc", "asc"]

# CSI sequences (colours, cursor moves) and OSC sequences (titles, hyperlinks).
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")


def strip_ansi(text: str) -> str:
    """Drop terminal colour and control sequences, which are noise in a search result or a file."""
    if "\x1b" not in text:
        return text
    return _ANSI.sub("", text)


def uid_hash(identity: str) -> int:
    """A 63-bit hash of a line's identity (fits SQLite's signed INTEGER; hex is an ES ``_id``)."""
    digest = hashlib.blake2b(identity.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


_RFC3339 = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|z|[+-]\d{2}:?\d{2})$")


def parse_rfc3339_ns(text: str) -> int | None:
    """RFC 3339 with up to nanoseconds (kubelet's ``timestamps=true`` prefix) -> epoch ns, or None.

    Written out because ``datetime.fromisoformat`` keeps only microseconds, and the shipper's
    positions need the exact nanosecond the kubelet printed to tell lines apart.
    """
    m = _RFC3339.match(text)
    if not m:
        return None
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    midnight = _day_start(year, month, day)
    if midnight is None or hour > 23 or minute > 59 or second > 59:
        return None  # what datetime() refuses (a leap second too)
    frac = m.group(7) or ""
    ns = int(frac.ljust(9, "0")) if frac else 0
    zone = m.group(8)
    offset = 0
    if zone not in ("Z", "z"):
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        offset = sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    return (midnight + hour * 3600 + minute * 60 + second - offset) * 1_000_000_000 + ns


# Every line of an answer is parsed from text and printed back (a page of 50 is 100 of these):
# the calendar part goes through datetime once per day, the time of day is arithmetic. With
# datetime for the whole stamp each way took ~25 us per line under load, a tenth of a search.
_EPOCH_DAY = date(1970, 1, 1)


@lru_cache(maxsize=4096)
def _day_start(year: int, month: int, day: int) -> int | None:
    """Epoch seconds of a UTC day's midnight; None for a day that does not exist."""
    try:
        return (date(year, month, day) - _EPOCH_DAY).days * 86_400
    except ValueError:
        return None


@lru_cache(maxsize=4096)
def _day_text(days: int) -> str:
    return datetime.fromtimestamp(days * 86_400, tz=UTC).strftime("%Y-%m-%d")


def iso_micro(ts: float) -> str:
    """Epoch seconds -> RFC 3339 UTC with microseconds (log lines are finer than milliseconds).

    Rounded to the microsecond in integers, the same way the embedded store keys its rows, so
    both backends print the same time for the same line.
    """
    seconds, micros = divmod(round(ts * 1_000_000), 1_000_000)
    days, clock = divmod(seconds, 86_400)
    hours, rest = divmod(clock, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{_day_text(days)}T{hours:02d}:{minutes:02d}:{secs:02d}.{micros:06d}Z"


@dataclass(frozen=True)
class LogRecord:
    """One line as written to a store.

    ``uid`` identifies the line across retries: the shipper derives it from the pod UID,
    container, timestamp and ordinal, so a batch written twice (a crash between the store's
    commit and the spool's acknowledgement) lands once. Empty: derived from the other fields.

    ``namespace_uid`` is the ``metadata.uid`` of the namespace the line was logged in (the
    shipper knows it from the watch cache). It is what tells a namespace apart from an earlier
    one of the same name, whatever the line's time; empty when the writer did not know it.

    ``cluster`` is the name of the cluster the line was logged in. Empty: the writer did not
    say (lines of single-cluster installs and of hubs older than the cluster level), read as
    the implicit cluster's. It is not part of the identity: a pod UID names one pod anywhere.
    """

    time: float
    namespace: str
    pod: str
    container: str
    message: str
    workload: str = ""
    node: str = ""
    pod_uid: str = ""
    uid: str = ""
    namespace_uid: str = ""
    cluster: str = ""

    def identity(self) -> str:
        if self.uid:
            return self.uid
        return f"{self.namespace}/{self.pod}/{self.container}/{self.pod_uid}/{self.time!r}/{self.message}"


@dataclass(frozen=True)
class LogLine:
    """One line as read back."""

    time: float
    namespace: str
    pod: str
    container: str
    message: str
    workload: str = ""
    node: str = ""
    cluster: str = ""  # as stored: "" for lines written without one (the implicit cluster)
    # ``time`` as :func:`iso_micro` writes it, when the store already held it in that form
    # (Elasticsearch keeps the text the hub wrote): answers use it rather than format the same
    # text again (50 of those per page). Not part of a line's identity; "" when not known.
    stamp: str = field(default="", compare=False, repr=False)

    def iso_time(self) -> str:
        """``time`` as RFC 3339 UTC with microseconds (:func:`iso_micro`)."""
        return self.stamp or iso_micro(self.time)

    def to_dict(self) -> dict[str, Any]:
        return {
            "time": self.iso_time(),
            "cluster": self.cluster,
            "namespace": self.namespace,
            "pod": self.pod,
            "container": self.container,
            "workload": self.workload,
            "node": self.node,
            "message": strip_ansi(self.message),
        }


@dataclass(frozen=True)
class LogQuery:
    """A fully scoped question to a store.

    ``visibility`` maps each namespace the caller may read (already intersected with the
    namespaces asked for) to its floor. None means every namespace with no floor (platform
    admins asking for no namespace filter). An empty mapping means nothing is visible; stores
    must answer it with no lines, never treat it as "no filter".

    ``namespace_uids`` maps a namespace of ``visibility`` to the UID of the namespace of that
    name that exists now. Which lines of a visible namespace are shown (the predecessor rule,
    the same in every store): a line stored with a namespace UID is shown exactly when that UID
    is the current one, whatever its time; a line stored without one (older writers, indices
    read in place) is shown when it is not older than the floor, the namespace's creation
    time. A namespace absent from ``namespace_uids`` (its UID unknown, or a store that keeps no
    UIDs) is judged by the floor alone.

    ``clusters`` is the set of cluster labels a line must carry to be seen, None for any
    cluster. ``""`` stands for lines stored without a cluster (they belong to the implicit
    cluster, so a question about it names both ``""`` and its name). The visibility applies
    within those clusters: a namespace name is one tenant's in one cluster only, so the logs
    service asks one store query per cluster whenever the scope differs between clusters.
    """

    visibility: Mapping[str, float] | None
    namespace_uids: Mapping[str, str] = field(default_factory=dict)
    clusters: tuple[str, ...] | None = None
    workloads: tuple[str, ...] = ()
    pods: tuple[str, ...] = ()
    containers: tuple[str, ...] = ()
    text: Expr | None = None
    start: float | None = None  # inclusive, epoch seconds
    end: float | None = None  # exclusive
    sort: Sort = "desc"
    offset: int = 0
    size: int = 50

    @property
    def sees_nothing(self) -> bool:
        return self.visibility is not None and not self.visibility


@dataclass(frozen=True)
class SearchResult:
    items: list[LogLine]
    total: int
    total_exact: bool = True


@dataclass(frozen=True)
class Bucket:
    time: float
    count: int


@dataclass(frozen=True)
class Partition:
    """One unit of retention: a day file of the embedded store or a dated index."""

    name: str
    day: str  # YYYY-MM-DD (UTC)
    lines: int
    bytes: int

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "day": self.day, "lines": self.lines, "bytes": self.bytes}


class LogStore(Protocol):
    """What a log backend does. Every method raises BackendUnavailable(name, ...) on an outage."""

    name: str

    def write(self, records: Sequence[LogRecord]) -> int:
        """Store a batch; returns how many lines were new (lines already stored are skipped)."""
        ...

    def refresh(self) -> None:
        """Make every written line searchable now (Elasticsearch refreshes about once a second)."""
        ...

    def search(self, query: LogQuery) -> SearchResult: ...

    def histogram(self, query: LogQuery, *, interval: float) -> list[Bucket]:
        """Counts per ``interval`` seconds, buckets aligned to the epoch, empty buckets included."""
        ...

    def export(self, query: LogQuery, *, limit: int) -> Iterator[LogLine]:
        """Every matching line in ``query.sort`` order (offset/size ignored), at most ``limit``."""
        ...

    def partitions(self) -> list[Partition]: ...

    def drop_before(self, day: str) -> list[str]:
        """Drop whole partitions of days before ``day`` (YYYY-MM-DD); returns their names."""
        ...

    def drop_namespace_before(self, namespace: str, day: str, *, clusters: tuple[str, ...] | None = None) -> int:
        """Delete one namespace's lines in the partitions of days before ``day`` (a project's own
        retention, shorter than the platform's); returns how many lines went. ``clusters``: only
        the lines carrying one of these cluster labels (``""``: lines stored without one, as in
        :class:`LogQuery`), so a project's retention leaves a same-named namespace of another
        cluster alone; None: whatever their cluster."""
        ...

    def probe(self) -> str: ...

    def close(self) -> None: ...


class ClusterStores(Protocol):
    """The clusters with a store of their own (``logs.mode own``), each with it: asked at each
    read and write (the runtime's ``OwnStores`` follows the cluster registry); closed with the
    log service that was handed them."""

    def __call__(self) -> Mapping[str, LogStore]: ...

    def close(self) -> None: ...


# -- request parsing shared by the API and the console ---------------------------------------------


@dataclass(frozen=True)
class LogParams:
    """A validated log request as a user sent it (before scoping); the web layer reads it from
    the query string with its bounded parser (``web.params.log_params``)."""

    namespaces: tuple[str, ...] = ()
    workloads: tuple[str, ...] = ()
    pods: tuple[str, ...] = ()
    containers: tuple[str, ...] = ()
    clusters: tuple[str, ...] = ()  # the clusters asked about; none: every one the caller may read
    q: str = ""
    text: Expr | None = None
    start: float | None = None
    end: float | None = None
    sort: Sort = "desc"
    offset: int = 0
    size: int = 50
    interval: float | None = None
    extra: Mapping[str, str] = field(default_factory=dict)

    def to_query(
        self,
        visibility: Mapping[str, float] | None,
        namespace_uids: Mapping[str, str] | None = None,
        *,
        clusters: tuple[str, ...] | None = None,
    ) -> LogQuery:
        return LogQuery(
            visibility=visibility,
            namespace_uids=dict(namespace_uids or {}),
            clusters=clusters,
            workloads=self.workloads,
            pods=self.pods,
            containers=self.containers,
            text=self.text,
            start=self.start,
            end=self.end,
            sort=self.sort,
            offset=self.offset,
            size=self.size,
        )


def bucket_bounds(query: LogQuery, interval: float) -> tuple[int, int] | None:
    """The first and last bucket (as multiples of ``interval``) a histogram must fill, or None."""
    if query.start is None or query.end is None:
        return None
    first = int(query.start // interval)
    last = int((query.end - 1e-6) // interval)
    if last - first + 1 > MAX_BUCKETS:
        raise InvalidInput(
            f"the histogram would have {last - first + 1} buckets; "
            f"use a longer interval (at most {MAX_BUCKETS} buckets)",
            field="interval",
        )
    return first, last


def fill_buckets(counts: Mapping[int, int], interval: float, bounds: tuple[int, int] | None) -> list[Bucket]:
    """Buckets from ``bounds`` (or from the first to the last non-empty one), empty ones as zero."""
    if bounds is None:
        if not counts:
            return []
        bounds = (min(counts), max(counts))
        if bounds[1] - bounds[0] + 1 > MAX_BUCKETS:
            raise InvalidInput(
                f"the histogram would have {bounds[1] - bounds[0] + 1} buckets; give a time range or a longer interval",
                field="interval",
            )
    first, last = bounds
    return [Bucket(time=k * interval, count=counts.get(k, 0)) for k in range(first, last + 1)]
