"""Following the kubelet's CRI log files of one node, with positions that survive a restart.

Why files and not the API: reading ``/var/log/pods`` costs the API server nothing, sees every
line before the kubelet rotates it away, and still holds a deleted pod's file open to its end.

How a file is followed (docs/logs.md "The node collector"):

- **Identity** is ``st_dev:st_ino``: the kubelet rotates by renaming ``0.log`` to
  ``0.log.<YYYYMMDD-HHMMSS>`` (same inode), then asks the runtime to reopen ``0.log`` (a new
  inode); on its next rotation it gzips older rotated files (``.gz``, a new inode) and removes
  those beyond ``containerLogMaxFiles``.
- Every followed file stays **open**, so a renamed file is read to its end under its new name and
  a file unlinked with its pod directory is still read to its end, then forgotten. A rotated
  file is finished when it is at its end and either the container's newer file has lines or it
  has not grown for ``rotate_wait`` seconds; then its held records are flushed and it is closed.
- **Positions** (:class:`PositionStore`): per file identity, the offset of the first byte not
  yet acknowledged by the store, and per stream the end of the last acknowledged record when it
  lies beyond that offset (``skip``: stdout and stderr interleave in one file, so a record of
  one stream may have been stored while an earlier record of the other was still held).
  Re-reading from the position and skipping those lines rebuilds exactly the records that were
  not acknowledged, with the same ``(file, offset)`` identities, so a record is never stored
  twice and never lost. Written atomically (temporary file, fsync, rename).
- **Reused inodes**: the kubelet removes rotated files often and the file system hands their
  inode numbers to the next new file at once, so a file is ``dev:ino`` plus a fingerprint of its
  first line (:func:`head_of`), in positions and in record identities.
- A file the positions know but that is gone after a restart is looked for among the ``.gz``
  files by its fingerprint (the kubelet renamed and compressed it meanwhile) and read from the
  same offset inside it; a ``.gz`` rotated after the positions were last written and never seen
  is read whole; fingerprints of files read to their end are remembered for a day, so their
  ``.gz`` is not read again.
- A new file is read from its start. Compressed files from before the collector's first start
  (history) are not read.

Memory is bounded by the caller: :meth:`NodeTail.poll` reads at most ``budget`` bytes.

Longer than 400 lines because following a node's files is one state machine (discovery,
rotation, compression, reused inodes, positions) whose steps share the open files and their
positions; the pure line and record rules live apart in :mod:`hub.collectors.logs.nodecri`.
"""

from __future__ import annotations

import calendar
import contextlib
import gzip
import hashlib
import io
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from hub.collectors.logs.nodecri import (
    FLUSH_AFTER,
    MAX_RECORD_BYTES,
    ContainerRef,
    CriLine,
    Record,
    StreamGrouper,
    iter_lines,
    parse_cri,
    parse_log_name,
    parse_pod_dir,
)

log = logging.getLogger("kubehub.collector")

READ_CHUNK = 256 * 1024  # most bytes read from one file per poll, so every file gets its turn
ROTATE_WAIT = 5.0
DONE_MEMORY = 86_400.0  # seconds a finished file's fingerprint is remembered (its .gz may come later)


def file_id(st: os.stat_result) -> str:
    return f"{st.st_dev}:{st.st_ino}"


HEAD_MAX = 1024


def _stamp_seconds(stamp: str) -> int:
    """The kubelet's rotation suffix (UTC ``YYYYMMDD-HHMMSS``) as epoch seconds."""
    return calendar.timegm(time.strptime(stamp, "%Y%m%d-%H%M%S"))


def head_of(fh: IO[bytes]) -> str:
    """A fingerprint of a file's first line (CRI lines start with a nanosecond timestamp).

    Inode numbers are reused at once after a file is removed (the kubelet removes rotated files
    often), so ``dev:ino`` alone does not name a file over time: a record's identity and a
    stored position carry this fingerprint too. "" until the first line is complete.
    """
    fh.seek(0)
    data = fh.read(HEAD_MAX)
    nl = data.find(b"\n")
    if nl < 0 and len(data) < HEAD_MAX:
        return ""
    return hashlib.blake2b(data[: nl + 1] if nl >= 0 else data, digest_size=8).hexdigest()


@dataclass
class Followed:
    """One log file being read."""

    fid: str
    ref: ContainerRef
    restart: int
    stamp: str  # "" for the current file, the rotation stamp of a rotated one
    path: Path
    fh: IO[bytes] | None
    offset: int
    skip: dict[str, int] = field(default_factory=dict)
    groupers: dict[str, StreamGrouper] = field(default_factory=dict)
    inflight: dict[int, int] = field(default_factory=dict)  # record start -> count
    acked_end: dict[str, int] = field(default_factory=dict)
    gone: bool = False  # its path no longer exists (pod deleted, or compressed)
    finished: bool = False  # read to its end for good; closed
    last_growth: float = 0.0
    malformed: int = 0
    head: str = ""  # fingerprint of the first line (head_of), once it is complete

    @property
    def ident(self) -> str:
        """The file's identity in record identities: ``dev:ino:<first-line fingerprint>``."""
        return f"{self.fid}:{self.head}"

    @property
    def order(self) -> tuple[str, int, int, str]:
        return (str(self.path.parent), self.restart, 0 if self.stamp else 1, self.stamp)

    def safe_offset(self) -> int:
        starts = [self.offset, *self.inflight]
        for g in self.groupers.values():
            if g.pending_start is not None:
                starts.append(g.pending_start)
        return min(starts)

    def position(self, root: Path) -> dict[str, Any]:
        safe = self.safe_offset()
        skip = {s: e for s, e in self.acked_end.items() if e > safe}
        for s, e in self.skip.items():  # skips not reached yet by this run's reading
            if e > safe and e > skip.get(s, 0):
                skip[s] = e
        return {"path": str(self.path.relative_to(root)), "offset": safe, "skip": skip, "head": self.head}

    def idle(self) -> bool:
        return not self.inflight and all(g.pending_start is None for g in self.groupers.values())

    def sent(self, rec: Record) -> None:
        """``rec`` left for the store: positions stay before it until it is acknowledged."""
        self.inflight[rec.start] = self.inflight.get(rec.start, 0) + 1

    def acked(self, rec: Record) -> None:
        """``rec`` is stored: positions may move past it."""
        n = self.inflight.get(rec.start, 0) - 1
        if n > 0:
            self.inflight[rec.start] = n
        else:
            self.inflight.pop(rec.start, None)
        if rec.end > self.acked_end.get(rec.stream, 0):
            self.acked_end[rec.stream] = rec.end

    # -- reading: the same for a CRI file and a volume file; only what a line is differs ----------
    def read(self, limit: int) -> bytes:
        """Up to ``limit`` bytes from the offset; b"" when there are none or the file cannot be
        read (logged: the next poll tries again). Takes the first-line fingerprint once it can."""
        assert self.fh is not None
        try:
            self.fh.seek(self.offset)
            data = self.fh.read(limit)
        except OSError as exc:
            log.warning("cannot read %s: %s", self.path, exc)
            return b""
        if data and not self.head:
            self.head = head_of(self.fh)
            self.fh.seek(self.offset + len(data))
        return data

    def feed(
        self,
        line: CriLine,
        now: float,
        emit: Callable[[Followed, Record], None],
        *,
        max_record_bytes: int,
        flush_after: float,
    ) -> None:
        """One line to its stream's grouper (made on the stream's first line); complete records to ``emit``."""
        g = self.groupers.get(line.stream)
        if g is None:
            g = self.groupers[line.stream] = StreamGrouper(
                line.stream, max_record_bytes=max_record_bytes, flush_after=flush_after
            )
        for rec in g.feed(line, now):
            emit(self, rec)

    def flush_due(self, now: float, emit: Callable[[Followed, Record], None]) -> None:
        """Records held for a continuation that did not come within ``flush_after``, to ``emit``."""
        for g in self.groupers.values():
            for rec in g.flush_due(now):
                emit(self, rec)

    def advance(self, data: bytes, consumed: int, limit: int, now: float) -> None:
        """Moves the offset past the ``consumed`` bytes of complete lines of ``data``. A read of
        ``limit`` bytes holding no line end is one line longer than a read: what is there is
        taken as a cut line, rather than stall on it."""
        if consumed == 0 and len(data) >= limit:
            consumed = len(data)
        self.offset += consumed
        if consumed:
            self.last_growth = now

    def finish(self, emit: Callable[[Followed, Record], None] | None) -> None:
        """Read to its end for good: flush the pending multi-line records (to ``emit``), close."""
        for g in self.groupers.values():
            for rec in g.flush():
                if emit is not None:
                    emit(self, rec)
        self.finished = True
        if self.fh is not None:
            self.fh.close()
            self.fh = None


class PositionStore:
    """``positions.json``: where each file was read up to, written atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.files: dict[str, dict[str, Any]] = {}
        self.gz_done: set[str] = set()
        self.done: dict[str, float] = {}  # fingerprints of files read to their end and forgotten
        self.saved_at: float | None = None  # wall-clock time of the last save (None: never saved)
        try:
            raw = json.loads(path.read_text())
            self.files = {str(k): dict(v) for k, v in raw.get("files", {}).items()}
            self.gz_done = set(raw.get("gz_done", []))
            self.done = {str(k): float(v) for k, v in raw.get("done", {}).items()}
            self.saved_at = float(raw.get("saved_at", 0.0))
        except FileNotFoundError:
            pass
        except (OSError, ValueError) as exc:
            log.error("positions file %s is unreadable (%s); starting from the files' beginnings", path, exc)

    def save(self, files: dict[str, dict[str, Any]], gz_done: set[str], done: dict[str, float] | None = None) -> None:
        self.files, self.gz_done, self.done = files, gz_done, dict(done or {})
        self.saved_at = time.time()
        body = {
            "version": 1,
            "saved_at": self.saved_at,
            "files": files,
            "gz_done": sorted(gz_done),
            "done": self.done,
        }
        data = json.dumps(body, separators=(",", ":"))
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        with contextlib.suppress(OSError):
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)


Emit = Callable[[Followed, Record], None]


class FileTail:
    """What every tail does alike, whatever its files are (CRI or volume): the acknowledgement
    bookkeeping lives on the :class:`Followed` file itself, and closing closes each open file."""

    files: dict[str, Followed]

    def _finish(self, f: Followed, emit: Emit | None = None) -> None:
        f.finish(emit)

    def sent(self, f: Followed, rec: Record) -> None:
        f.sent(rec)

    def acked(self, f: Followed, rec: Record) -> None:
        f.acked(rec)

    def close(self) -> None:
        for f in self.files.values():
            if f.fh is not None:
                f.fh.close()
                f.fh = None


class NodeTail(FileTail):
    """Every CRI log file under ``root`` (``/var/log/pods``), followed with positions."""

    def __init__(
        self,
        root: Path,
        positions: PositionStore,
        *,
        rotate_wait: float = ROTATE_WAIT,
        max_record_bytes: int = MAX_RECORD_BYTES,
        flush_after: float = FLUSH_AFTER,
    ) -> None:
        self.root = root
        self.positions = positions
        self.rotate_wait = rotate_wait
        self.max_record_bytes = max_record_bytes
        self.flush_after = flush_after
        self.files: dict[str, Followed] = {}
        self.gz_done: set[str] = set(positions.gz_done)
        self._stored = dict(positions.files)  # positions of files not found again yet
        self._ordered: list[Followed] = []
        self._gz_seen: set[str] = set(self.gz_done)
        self.done_heads: dict[str, float] = dict(positions.done)
        self.lost_files = 0

    # -- discovery ------------------------------------------------------------------------------
    def discover(self, now: float) -> None:
        """Find new, renamed, compressed and vanished files (a directory walk, no reads)."""
        seen: set[str] = set()
        gz_found: list[tuple[Path, str, ContainerRef, int, str]] = []
        try:
            pod_dirs = os.listdir(self.root)
        except FileNotFoundError:
            pod_dirs = []
        for pod_dir in pod_dirs:
            parsed = parse_pod_dir(pod_dir)
            if parsed is None:
                continue
            namespace, pod, uid = parsed
            try:
                containers = os.listdir(self.root / pod_dir)
            except (NotADirectoryError, FileNotFoundError):
                continue
            for container in containers:
                ref = ContainerRef(namespace, pod, uid, container)
                cdir = self.root / pod_dir / container
                try:
                    names = os.listdir(cdir)
                except (NotADirectoryError, FileNotFoundError):
                    continue
                for name in names:
                    kind = parse_log_name(name)
                    if kind is None:
                        continue
                    path = cdir / name
                    try:
                        st = os.stat(path)
                    except FileNotFoundError:
                        continue
                    fid = file_id(st)
                    restart, stamp, gz = kind
                    if gz:
                        gz_found.append((path, fid, ref, restart, stamp))
                        continue
                    seen.add(fid)
                    self._found(fid, path, ref, restart, stamp, st, now)
        for fid, f in self.files.items():
            if fid not in seen and not f.gone and self._unlinked(f):
                f.gone = True
        self._gz_seen = {g[1] for g in gz_found}
        for path, gzid, ref, restart, stamp in gz_found:
            self._found_gz(path, gzid, ref, restart, stamp, now)
        for stored in self._stored.values():
            # Known from the positions, found neither plain nor compressed: removed while we were down.
            self.lost_files += 1
            log.warning("log file %s vanished while the collector was down", stored.get("path"))
        self._stored.clear()
        self._ordered = sorted(self.files.values(), key=lambda f: f.order)

    @staticmethod
    def _unlinked(f: Followed) -> bool:
        """Whether a file not found by name is really gone (a rename caught mid-listing is not)."""
        if f.fh is None or isinstance(f.fh, io.BytesIO):
            return True
        try:
            return os.fstat(f.fh.fileno()).st_nlink == 0
        except OSError:
            return True

    def _found(
        self, fid: str, path: Path, ref: ContainerRef, restart: int, stamp: str, st: os.stat_result, now: float
    ) -> None:
        f = self.files.get(fid)
        if f is not None:
            # While its descriptor is open an inode cannot be reused, so an open file found under
            # a new name was renamed (rotated). A closed (finished) one is the same file only
            # under its rotated name; anything else is a new file on a reused inode.
            if f.ref == ref and f.restart == restart and not f.gone:
                if f.fh is not None:
                    f.path, f.stamp = path, stamp
                    return
                if f.stamp and f.stamp == stamp:
                    return
            if not f.gone:
                # Its inode now names another file: the one we followed was removed.
                self._finish(f)
            f.gone = True
            if f.head:
                self.done_heads[f.head] = time.time()  # its .gz may show up later
            self.files.pop(fid)
            self._ordered = [o for o in self._ordered if o is not f]
        try:
            fh: IO[bytes] = open(path, "rb")  # noqa: SIM115 - kept open while the file is followed
        except FileNotFoundError:
            return
        if file_id(os.fstat(fh.fileno())) != fid:  # replaced between stat and open: next discovery
            fh.close()
            return
        head = head_of(fh)
        stored = self._stored.get(fid)
        offset, skip = 0, {}
        if (
            stored is not None
            and Path(str(stored.get("path", ""))).parent == path.parent.relative_to(self.root)
            and int(stored.get("offset", 0)) <= st.st_size
            and stored.get("head") == head
        ):
            del self._stored[fid]
            offset, skip = int(stored.get("offset", 0)), dict(stored.get("skip", {}))
        # else: a reused inode; the position (if any) may still be about a .gz found below
        self.files[fid] = Followed(fid, ref, restart, stamp, path, fh, offset, skip=skip, last_growth=now, head=head)

    def _found_gz(self, path: Path, gzid: str, ref: ContainerRef, restart: int, stamp: str, now: float) -> None:
        """A compressed rotated file: the continuation of a file we knew, or history to skip.

        It is matched by its first bytes (``head_of``), not by name: a file rotated and then
        compressed while the collector was down has a name the positions never saw.
        """
        if gzid in self.gz_done:
            return
        plain = path.with_suffix("")  # 0.log.<stamp>
        self.gz_done.add(gzid)  # whatever happens below, it is looked at once
        if any(f.path == plain for f in self.files.values()):
            return  # followed through its open descriptor (or finished): the .gz adds nothing
        try:
            with gzip.open(path, "rb") as gz:
                head = head_of(gz)  # type: ignore[arg-type]
        except (OSError, EOFError) as exc:
            log.warning("cannot read %s (%s)", path, exc)
            return
        if head in self.done_heads:
            return  # read to its end before it was compressed, and forgotten since
        rel_dir = plain.parent.relative_to(self.root)
        for f in self.files.values():
            if f.head and f.head == head and f.path.parent == plain.parent:
                return  # the same file, followed under another name
        for fid, stored in list(self._stored.items()):
            if stored.get("head") != head or not head or Path(str(stored.get("path", ""))).parent != rel_dir:
                continue
            del self._stored[fid]
            try:
                with gzip.open(path, "rb") as gz:
                    data = gz.read()
            except (OSError, EOFError) as exc:
                log.warning("cannot read %s (%s); its unread lines are lost", path, exc)
                self.lost_files += 1
                return
            f = Followed(
                fid, ref, restart, stamp, plain, io.BytesIO(data), int(stored.get("offset", 0)), last_growth=now
            )
            f.skip, f.head, f.gone = dict(stored.get("skip", {})), head, True
            self.files[fid] = f
            return
        # Never followed. Rotated and compressed after the collector last wrote its positions (it
        # was down meanwhile): unread lines, read whole. Older (or no positions at all, a first
        # start): history from before the collector, not read (documented).
        saved_at = self.positions.saved_at
        if saved_at is None or _stamp_seconds(stamp) < int(saved_at) - 1:
            return
        try:
            with gzip.open(path, "rb") as gz:
                data = gz.read()
        except (OSError, EOFError) as exc:
            log.warning("cannot read %s (%s); its lines are lost", path, exc)
            self.lost_files += 1
            return
        f = Followed(gzid, ref, restart, stamp, plain, io.BytesIO(data), 0, last_growth=now, head=head)
        f.gone = True
        self.files[gzid] = f

    # -- reading --------------------------------------------------------------------------------
    def poll(self, now: float, emit: Emit, budget: int) -> int:
        """Read new lines of every file (up to ``budget`` bytes in all); records go to ``emit``."""
        used = 0
        newer_has_data: set[tuple[str, int]] = set()
        for f in reversed(self._ordered):  # newest first: does a container's current file have lines?
            if not f.stamp and f.offset > 0:
                newer_has_data.add((str(f.path.parent), f.restart))
        for f in self._ordered:
            if f.finished:
                continue
            if used < budget and f.fh is not None:
                used += self._read(f, now, emit, min(READ_CHUNK, budget - used))
            f.flush_due(now, emit)
            if used >= budget:
                continue
            if f.last_growth >= now:
                continue  # it grew this round
            superseded = (str(f.path.parent), f.restart) in newer_has_data or now - f.last_growth >= self.rotate_wait
            if f.gone or (f.stamp and superseded):
                self._finish(f, emit)
        return used

    def _read(self, f: Followed, now: float, emit: Emit, limit: int) -> int:
        data = f.read(limit)
        consumed = 0
        for raw, start in iter_lines(data, f.offset):
            consumed = start + len(raw) - f.offset
            line = parse_cri(raw, start)
            if line is None:
                f.malformed += 1
                continue
            if start < f.skip.get(line.stream, 0):
                continue  # already stored before a restart
            f.feed(line, now, emit, max_record_bytes=self.max_record_bytes, flush_after=self.flush_after)
        f.advance(data, consumed, limit, now)
        return len(data)

    # -- positions --------------------------------------------------------------------------------
    def save_positions(self) -> None:
        """Persist every position; forget finished files that are gone and fully acknowledged."""
        wall = time.time()
        for fid in [k for k, f in self.files.items() if f.finished and f.gone and f.idle()]:
            if self.files[fid].head:
                self.done_heads[self.files[fid].head] = wall  # its .gz may show up later
            del self.files[fid]
            self._ordered = [f for f in self._ordered if f.fid != fid]
        files = {fid: f.position(self.root) for fid, f in self.files.items()}
        files.update(self._stored)
        self.gz_done &= self._gz_seen  # compressed files the kubelet removed need no memory
        self.done_heads = {h: t for h, t in self.done_heads.items() if wall - t < DONE_MEMORY}
        self.positions.save(files, set(self.gz_done), self.done_heads)
