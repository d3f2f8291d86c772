"""The pure part of the node collector: CRI log lines, partial lines, multi-line records.

The kubelet's runtime writes each container's output to
``/var/log/pods/<namespace>_<pod>_<pod-uid>/<container>/<restart>.log`` in the CRI format
``<RFC3339Nano time> <stdout|stderr> <P|F> <message>``: a line longer than the runtime's buffer
(16 KiB in containerd) is cut into ``P`` (partial) pieces ended by one ``F`` (full) piece.
Nothing here touches a file or a clock: offsets and ``now`` are handed in, so the rules are
tested on their own (``tests/unit/test_node_collector_cri.py``) and the collector
(:mod:`hub.collectors.logs.nodetail`, :mod:`hub.collectors.logs.nodecollector`) only feeds them.

Multi-line rules (docs/logs.md "Multi-line records"), per stream of one container:

- **Java** (``java``): a line matching ``^\\s+at \\S``, ``^\\s*Caused by: ``, ``^\\s*Suppressed: ``
  or ``^\\s+\\.\\.\\. \\d+ (more|common frames omitted)`` joins the record before it when that
  record is a line naming an exception (``Exception``, ``Error`` or ``Throwable`` followed by
  ``:``, a space or the end: ``java.lang.IllegalStateException: boom``) or already a trace; so the
  header line starts the record and every frame and cause follows it.
- **Python** (``python``): ``Traceback (most recent call last):`` starts a record; indented lines
  (``  File …``, the source line, ``^``) join it; the first unindented line (``ValueError: x``)
  ends it and belongs to it. A chained traceback (a blank line, then ``During handling of the
  above exception, another exception occurred:`` or ``The above exception was the direct cause
  of the following exception:``, a blank line and the next ``Traceback``) stays in the same record.
- Every other line is a record of its own, and leaves at once (only a line naming an exception
  or a traceback in progress waits for its next line).

A record ends at ``max_record_bytes`` (the rest starts a new record, nothing is dropped) and
when no line joined it for ``flush_after`` seconds (a trace whose last line never comes).

Every record carries the byte offsets of its first line and the end of its last line in its
file: ``(file identity, start offset)`` is its identity in the store, so a record re-read after a
restart or re-sent after a lost answer is stored once.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from hub.collectors.logs.store import LogRecord, parse_rfc3339_ns

MAX_RECORD_BYTES = 64 * 1024  # the stores keep 64 KiB per message (store.MAX_MESSAGE_CHARS)
FLUSH_AFTER = 2.0  # seconds a multi-line record waits for its next line

_JAVA_CONT = re.compile(r"^(?:\s+at \S|\s*Caused by: |\s*Suppressed: |\s+\.\.\. \d+ (?:more|common frames omitted))")
# A line that may be followed by frames: it names an exception (``java.lang.IllegalStateException:
# boom``, ``Exception in thread "main" java.lang.Error``), like Fluent Bit's java start state.
_JAVA_HEAD = re.compile(r"(?:Exception|Error|Throwable)(?::|\s|$)")
_PY_START = "Traceback (most recent call last):"
_PY_CHAIN = (
    "During handling of the above exception, another exception occurred:",
    "The above exception was the direct cause of the following exception:",
)
_POD_DIR = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?)_([^_/]+)_([0-9a-zA-Z-]{1,64})$")
_CURRENT = re.compile(r"^(\d{1,9})\.log$")
_ROTATED = re.compile(r"^(\d{1,9})\.log\.(\d{8}-\d{6})(\.gz)?$")


@dataclass(frozen=True)
class CriLine:
    """One physical line of a CRI log file, with where it lies in the file."""

    time_ns: int
    stream: str  # stdout | stderr
    partial: bool
    message: str
    start: int  # byte offset of the line in its file
    end: int  # byte offset just after its newline


def parse_cri(raw: bytes, start: int) -> CriLine | None:
    """A CRI line (without or with its newline) at ``start``; None when it is not one.

    Malformed lines (a writer that is not a CRI runtime) are skipped by the caller and counted.
    """
    end = start + len(raw)
    text = raw.decode("utf-8", "replace").rstrip("\n")
    if text.endswith("\r"):
        text = text[:-1]
    parts = text.split(" ", 3)
    if len(parts) < 3:
        return None
    stamp, stream, tag = parts[0], parts[1], parts[2]
    if stream not in ("stdout", "stderr") or tag not in ("P", "F"):
        return None
    time_ns = parse_rfc3339_ns(stamp)
    if time_ns is None:
        return None
    return CriLine(time_ns, stream, tag == "P", parts[3] if len(parts) == 4 else "", start, end)


@dataclass(frozen=True)
class Record:
    """One log record of one container stream: a joined line or a whole stack trace."""

    time_ns: int
    stream: str
    message: str
    start: int
    end: int


@dataclass
class _Pending:
    time_ns: int
    start: int
    end: int
    parts: list[str] = field(default_factory=list)
    size: int = 0
    kind: str = ""  # "", "java", "py", "py-done" (exception line seen), "py-chain"
    # blank and chain lines after a Python exception line: (text, time_ns, start, end)
    held: list[tuple[str, int, int, int]] = field(default_factory=list)
    touched: float = 0.0

    def add(self, message: str, end: int, now: float) -> None:
        self.parts.append(message)
        self.size += len(message.encode("utf-8", "surrogatepass")) + 1
        self.end = end
        self.touched = now

    def record(self, stream: str) -> Record:
        return Record(self.time_ns, stream, "\n".join(self.parts), self.start, self.end)


class StreamGrouper:
    """Joins P pieces into lines and lines into multi-line records, for one stream of one file.

    ``feed`` returns the records a line completes; ``pending_start`` is the offset of the first
    line not yet in a returned record (None when nothing is held): the collector must not
    persist a position past it. ``flush_due(now)`` ends a record that waited too long, and
    ``flush()`` ends everything (the file is finished).
    """

    def __init__(self, stream: str, *, max_record_bytes: int = MAX_RECORD_BYTES, flush_after: float = FLUSH_AFTER):
        self.stream = stream
        self.max_record_bytes = max_record_bytes
        self.flush_after = flush_after
        self._piece: _Pending | None = None  # P pieces of one line
        self._rec: _Pending | None = None  # the multi-line record being built

    @property
    def pending_start(self) -> int | None:
        starts = [p.start for p in (self._piece, self._rec) if p is not None]
        return min(starts) if starts else None

    def feed(self, line: CriLine, now: float) -> list[Record]:
        out: list[Record] = []
        piece = self._piece
        if piece is None:
            piece = self._piece = _Pending(line.time_ns, line.start, line.end, touched=now)
        piece.add(line.message, line.end, now)
        if piece.size > self.max_record_bytes:
            # One physical line longer than a record may be: cut it, keep going with the rest.
            out.extend(self._end_record())
            out.append(Record(piece.time_ns, self.stream, "".join(piece.parts), piece.start, piece.end))
            self._piece = None
            return out
        if line.partial:
            return out
        self._piece = None
        out.extend(self._line("".join(piece.parts), piece.time_ns, piece.start, piece.end, now))
        return out

    def _line(self, text: str, time_ns: int, start: int, end: int, now: float) -> list[Record]:
        out: list[Record] = []
        rec = self._rec
        size = len(text.encode("utf-8", "surrogatepass")) + 1
        if rec is not None and rec.size + size > self.max_record_bytes:
            out.extend(self._end_record())
            rec = None
        if rec is not None:
            joined = self._joins(rec, text)
            if joined == "join":
                for held in rec.held:
                    rec.add(held[0], held[3], now)
                rec.held = []
                rec.add(text, end, now)
                return out
            if joined == "hold":
                rec.held.append((text, time_ns, start, end))
                rec.touched = now
                return out
            out.extend(self._end_record())
        rec = self._rec = _Pending(time_ns, start, end, touched=now)
        rec.add(text, end, now)
        if text.startswith(_PY_START):
            rec.kind = "py"
        elif _JAVA_CONT.match(text):
            rec.kind = "java"  # frames without a header line: still one record
        elif not _JAVA_HEAD.search(text):
            # Nothing can join a line that names no exception: it leaves at once, rather than
            # waiting flush_after seconds for a next line that would only end it.
            out.extend(self._end_record())
        return out

    def _joins(self, rec: _Pending, text: str) -> str:
        """Whether ``text`` joins the record: "join", "hold" (maybe, decided by the next line), "end"."""
        if rec.kind == "py":
            if text[:1] in (" ", "\t"):
                return "join"
            rec.kind = "py-done"  # the exception line: it belongs, what follows may chain
            return "join"
        if rec.kind == "py-done":
            if text.strip() == "" and not rec.held:
                return "hold"
            if text in _PY_CHAIN and len(rec.held) == 1:
                rec.kind = "py-chain"
                return "hold"
            return "end"
        if rec.kind == "py-chain":
            if text.strip() == "" and len(rec.held) == 2:
                return "hold"
            if text.startswith(_PY_START) and len(rec.held) == 3:
                rec.kind = "py"
                return "join"
            return "end"
        if _JAVA_CONT.match(text):
            rec.kind = "java"
            return "join"
        return "end"

    def _end_record(self) -> list[Record]:
        rec = self._rec
        self._rec = None
        if rec is None:
            return []
        out = [rec.record(self.stream)]
        # Lines held for a chain that never came: each is a record of its own, in order.
        out.extend(Record(t, self.stream, text, start, end) for text, t, start, end in rec.held)
        return out

    def flush_due(self, now: float) -> list[Record]:
        """End the multi-line record if no line joined it for ``flush_after`` seconds."""
        rec = self._rec
        if rec is not None and now - rec.touched >= self.flush_after:
            return self._end_record()
        return []

    def flush(self) -> list[Record]:
        """End everything held, P pieces included (the file is finished: nothing more will come)."""
        out = self._end_record()
        piece = self._piece
        self._piece = None
        if piece is not None:
            out.append(Record(piece.time_ns, self.stream, "".join(piece.parts), piece.start, piece.end))
        return out


# -- paths ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ContainerRef:
    """Whose log a file is, read from its path under /var/log/pods."""

    namespace: str
    pod: str
    pod_uid: str
    container: str


def parse_pod_dir(name: str) -> tuple[str, str, str] | None:
    """``<namespace>_<pod>_<uid>`` -> (namespace, pod, uid); names cannot hold ``_``."""
    m = _POD_DIR.match(name)
    if not m:
        return None
    return m.group(1), m.group(3), m.group(4)


def parse_log_name(name: str) -> tuple[int, str, bool] | None:
    """``<restart>.log`` -> (restart, "", False); ``<restart>.log.<YYYYMMDD-HHMMSS>[.gz]`` ->
    (restart, stamp, gz); anything else (the kubelet's ``.tmp`` files) -> None."""
    m = _CURRENT.match(name)
    if m:
        return int(m.group(1)), "", False
    m = _ROTATED.match(name)
    if m:
        return int(m.group(1)), m.group(2), bool(m.group(3))
    return None


# -- the ingest wire format and its conversion to store records ------------------------------
def record_uid(ref: ContainerRef, file_id: str, start: int) -> str:
    """The identity of a record across retries and restarts: its file and its first byte."""
    return f"cri/{ref.pod_uid}/{ref.container}/{file_id}/{start}"


_GENERATED = (
    re.compile(r"^(?P<w>.+)-[a-z0-9]{6,10}-[a-z0-9]{5}$"),  # Deployment: <w>-<rs hash>-<pod hash>
    re.compile(r"^(?P<w>.+)-\d+$"),  # StatefulSet: <w>-<ordinal>
    re.compile(r"^(?P<w>.+)-[a-z0-9]{5}$"),  # DaemonSet, Job: <w>-<hash>
)


def workload_from_pod_name(pod: str) -> str:
    """The workload a controller-made pod name points at; the name itself otherwise.

    Only used where the hub's watch cache is not at hand (a collector writing straight to
    Elasticsearch, a pod the cache no longer holds).
    """
    for pattern in _GENERATED:
        m = pattern.match(pod)
        if m:
            return m.group("w")
    return pod


def to_log_record(
    ref: ContainerRef,
    file_id: str,
    rec: Record,
    *,
    node: str,
    workload: str = "",
    namespace_uid: str = "",
    cluster: str = "",
) -> LogRecord:
    return LogRecord(
        time=rec.time_ns / 1e9,
        namespace=ref.namespace,
        pod=ref.pod,
        container=ref.container,
        message=rec.message,
        workload=workload or workload_from_pod_name(ref.pod),
        node=node,
        pod_uid=ref.pod_uid,
        uid=record_uid(ref, file_id, rec.start),
        namespace_uid=namespace_uid,
        cluster=cluster,
    )


def iter_lines(data: bytes, base: int) -> Iterator[tuple[bytes, int]]:
    """Complete lines of ``data`` (read at file offset ``base``) with their offsets; the bytes
    after the last newline are left for the next read."""
    pos = 0
    while True:
        nl = data.find(b"\n", pos)
        if nl < 0:
            return
        yield data[pos : nl + 1], base + pos
        pos = nl + 1
