"""Log files that containers write into a volume (落盘日志), read by the node collector.

Many applications log to files rather than to stdout: the kubelet never sees those lines, so
neither ``/var/log/pods`` nor the pod log API has them. A workload asks for its files to be
collected with an annotation on its pod template::

    kubehub.io/log-files: "app:logs/*.log, app:logs/audit/*.log"

each entry ``<container>:<volume>/<glob>``: the container whose lines they are (the project's
include/exclude patterns apply to it, and the console shows the lines under it), the volume
(by its name in the pod spec) and a glob relative to the volume's root. On the node a volume
lives in ``<kubelet root>/pods/<pod uid>/volumes/<plugin>/<volume name>/`` (``kubernetes.io~empty-dir``
for an emptyDir; plugins that name the directory after the volume, not after a PersistentVolume).

Why the hub says which pods ask, not the node: the collector makes no API request and a pod's
annotations are nowhere on the node's disk, while the hub's watch cache holds every pod. The
collector asks the hub (``GET /api/v1/logs/ingest/volume-files?node=``, with its collector
token) every ``refresh`` seconds; the hub leaves out pods whose project does not collect that
container. Until the first answer nothing is read and no stored position is given up.

Following a volume file reuses the CRI follower's rules (:mod:`hub.collectors.logs.nodetail`):
identity ``dev:ino:<first-line fingerprint>``, the file kept open so a renamed (rotated) file is
read to its end, positions written only for acknowledged records, so a record is stored once and
never lost across restarts and hub outages. Differences: lines are plain text (no CRI prefix), so
a record's time is the timestamp its line starts with (ISO 8601 forms, :func:`line_time_ns`)
or else the time it was first read; those read times are written with the positions *before*
the records can be acknowledged, so a line read again after a restart keeps its time, and with
it its identity in the stores (which key a record by time and identity). The multi-line rules
(Java, Python traces) are the same; a file truncated in place (``copytruncate``) is read again
from its start (what it held beyond what was read is gone; such events are counted in
``truncated``); a line not ended by a newline waits for it.

Over 400 lines because the three parts of one feature sit together: the annotation's rules
(shared by the hub's route and the collector), the follower, and the command's wiring that adds
it to ``kubehub collect-node`` next to the CRI follower.
"""

from __future__ import annotations

import argparse
import calendar
import contextlib
import json
import logging
import os
import re
import signal
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from hub.collectors.logs.nodecri import (
    FLUSH_AFTER,
    MAX_RECORD_BYTES,
    ContainerRef,
    CriLine,
    Record,
    iter_lines,
)
from hub.collectors.logs.nodetail import READ_CHUNK, Emit, FileTail, Followed, NodeTail, PositionStore, file_id, head_of

log = logging.getLogger("kubehub.collector")

LOG_FILES_ANNOTATION = "kubehub.io/log-files"
MAX_ENTRIES = 16
FINISH_WAIT = 5.0  # seconds a file no longer matched must stay unchanged before it is closed
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\Z")
_GLOB = re.compile(r"^[A-Za-z0-9._*?\[\]-]+(/[A-Za-z0-9._*?\[\]-]+){0,7}\Z")


@dataclass(frozen=True, slots=True)
class VolumeFiles:
    """One entry of the annotation: whose lines, which volume, which files in it."""

    container: str
    volume: str
    glob: str

    def to_dict(self) -> dict[str, str]:
        return {"container": self.container, "volume": self.volume, "glob": self.glob}


def parse_log_files(value: str) -> tuple[VolumeFiles, ...]:
    """The annotation's entries; a ValueError saying which entry is wrong and why."""
    out: list[VolumeFiles] = []
    for raw in re.split(r"[,\n]", value or ""):
        entry = raw.strip()
        if not entry:
            continue
        container, sep, rest = entry.partition(":")
        volume, slash, glob = rest.partition("/")
        if not sep or not slash or not _LABEL.match(container) or not _LABEL.match(volume):
            raise ValueError(f"{entry!r} is not <container>:<volume>/<glob>")
        if not _GLOB.match(glob) or any(part in (".", "..") for part in glob.split("/")):
            raise ValueError(f"{entry!r}: the glob must be relative to the volume, without . or .. parts")
        out.append(VolumeFiles(container, volume, glob))
    if len(out) > MAX_ENTRIES:
        raise ValueError(f"at most {MAX_ENTRIES} entries, got {len(out)}")
    return tuple(dict.fromkeys(out))


@dataclass(frozen=True, slots=True)
class WantedPod:
    """A pod on this node whose volume files are to be read."""

    namespace: str
    pod: str
    uid: str
    files: tuple[VolumeFiles, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "pod": self.pod,
            "uid": self.uid,
            "files": [f.to_dict() for f in self.files],
        }

    @staticmethod
    def from_dict(d: dict[str, Any]) -> WantedPod:
        files = tuple(VolumeFiles(str(f["container"]), str(f["volume"]), str(f["glob"])) for f in d.get("files", ()))
        return WantedPod(str(d["namespace"]), str(d["pod"]), str(d["uid"]), files)


def wanted_on_node(pods: Iterable[Any], admits: Callable[[str, str], bool]) -> list[WantedPod]:
    """Hub side: the pods (of one node) whose annotation asks for volume files, the entries
    their project collects (``admits(namespace, container)``); a malformed annotation is skipped
    with a warning (the workload's owner sees nothing collected, the collector nothing odd)."""
    out = []
    for p in pods:
        value = getattr(p, "log_files", "")
        if not value or getattr(p, "terminal", False):
            continue
        try:
            entries = parse_log_files(value)
        except ValueError as exc:
            log.warning("pod %s/%s: annotation %s ignored: %s", p.namespace, p.name, LOG_FILES_ANNOTATION, exc)
            continue
        kept = tuple(e for e in entries if admits(p.namespace, e.container))
        if kept:
            out.append(WantedPod(p.namespace, p.name, p.uid, kept))
    return sorted(out, key=lambda w: (w.namespace, w.pod))


_STAMP = re.compile(
    r"^\[?(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d{1,9}))?\s?(Z|[+-]\d{2}:?\d{2})?(?=[\]\s]|$)"
)
_MIN_NS, _MAX_NS = 946_684_800 * 10**9, 4_102_444_800 * 10**9  # 2000 to 2100


def line_time_ns(text: str) -> int | None:
    """The time a line starts with (``2026-12-05T13:24:42.123Z``, ``2026-12-05 13:24:42,123``,
    ``[2026-12-05 13:24:42+08:00]``; no zone: UTC), or None. Lines carry their own time far more
    often than not, and it is the time the application meant, not the time we read it."""
    m = _STAMP.match(text)
    if not m:
        return None
    y, mo, d, h, mi, sec, frac, zone = m.groups()
    try:
        seconds = calendar.timegm((int(y), int(mo), int(d), int(h), int(mi), int(sec), 0, 0, 0))
    except (ValueError, OverflowError):
        return None
    if not (1 <= int(mo) <= 12 and 1 <= int(d) <= 31 and int(h) < 24 and int(mi) < 60 and int(sec) < 61):
        return None
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        seconds -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    ns = seconds * 10**9 + int((frac or "0").ljust(9, "0"))
    return ns if _MIN_NS <= ns < _MAX_NS else None


class HubVolumeFiles:
    """Asks the hub which pods of this node want volume files; keeps the last good answer
    (None until there is one) so an unreachable hub stops nothing already followed."""

    def __init__(self, hub_url: str, token: str, node: str, *, cluster: str = "", refresh: float = 30.0) -> None:
        query = {"node": node, **({"cluster": cluster} if cluster else {})}
        self.url = hub_url.rstrip("/") + "/api/v1/logs/ingest/volume-files?" + urllib.parse.urlencode(query)
        self.token = token
        self.refresh = refresh
        self.last: list[WantedPod] | None = None
        self._next = 0.0
        self._failing = False

    def __call__(self) -> list[WantedPod] | None:
        now = time.monotonic()
        if now < self._next:
            return self.last
        self._next = now + self.refresh
        req = urllib.request.Request(self.url, headers={"Authorization": f"Bearer {self.token}"})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                body = json.loads(resp.read())
            self.last = [WantedPod.from_dict(d) for d in body.get("pods", ())]
            self._failing = False
        except (OSError, ValueError, KeyError, urllib.error.URLError) as exc:
            if not self._failing:
                log.warning("cannot ask the hub which volume log files to read (%s); keeping the last answer", exc)
            self._failing = True
            self._next = now + min(self.refresh, 5.0)
        return self.last


class VolumeTail(FileTail):
    """The volume log files of the pods ``wanted`` names, under ``<kubelet root>/pods``."""

    def __init__(
        self,
        kubelet_root: Path,
        positions: PositionStore,
        wanted: Callable[[], Sequence[WantedPod] | None],
        *,
        max_record_bytes: int = MAX_RECORD_BYTES,
        flush_after: float = FLUSH_AFTER,
        finish_wait: float = FINISH_WAIT,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.root = kubelet_root
        self.positions = positions
        self.wanted = wanted
        self.max_record_bytes = max_record_bytes
        self.flush_after = flush_after
        self.finish_wait = finish_wait
        self.wall = wall
        self.files: dict[str, Followed] = {}
        self._stored = dict(positions.files)
        self._resolved = False  # stored positions looked for once, after the first answer
        self.lost_files = 0
        self.truncated = 0
        # fid -> line start -> time given to it; written (with the positions) before the lines'
        # records can be acknowledged, so a line read again after a restart keeps its time.
        self._times: dict[str, dict[int, int]] = {}
        self._new_times = False

    def discover(self, now: float) -> None:
        wanted = self.wanted()
        if wanted is None:
            return  # the hub has not answered yet: read nothing, give up no position
        seen: set[str] = set()
        for wp in wanted:
            volumes = self.root / "pods" / wp.uid / "volumes"
            try:
                plugins = sorted(os.listdir(volumes))
            except (FileNotFoundError, NotADirectoryError):
                continue
            for entry in wp.files:
                ref = ContainerRef(wp.namespace, wp.pod, wp.uid, entry.container)
                for plugin in plugins:
                    vdir = volumes / plugin / entry.volume
                    if not vdir.is_dir():
                        continue
                    for path in sorted(vdir.glob(entry.glob)):
                        if path.suffix == ".gz" or path.is_symlink():
                            continue  # compressed rotations are history; a link may leave the volume
                        try:
                            st = os.stat(path)
                        except FileNotFoundError:
                            continue
                        if not path.is_file():
                            continue
                        fid = file_id(st)
                        seen.add(fid)
                        self._found(fid, path, ref, now)
        for fid, f in self.files.items():
            if fid not in seen:
                f.gone = True  # unlinked, rotated out of the glob, or no longer wanted: read to its end
        if not self._resolved:
            self._resolved = True
            for stored in self._stored.values():
                self.lost_files += 1
                log.warning("volume log file %s vanished while the collector was down", stored.get("path"))
            self._stored.clear()

    def _found(self, fid: str, path: Path, ref: ContainerRef, now: float) -> None:
        f = self.files.get(fid)
        if f is not None and f.ref == ref and not f.finished:
            f.path, f.gone = path, False  # the same open file, perhaps renamed
            return
        try:
            fh = open(path, "rb")  # noqa: SIM115 - kept open while the file is followed
        except OSError:
            return
        if file_id(os.fstat(fh.fileno())) != fid:  # replaced between stat and open: next discovery
            fh.close()
            return
        head = head_of(fh)
        offset, skip = 0, {}
        if f is not None:  # a file we finished, wanted again (same inode and first line: go on)
            if f.head == head and f.ref == ref:
                offset = f.offset
            self.files.pop(fid)
        stored = self._stored.get(fid)
        if (
            stored is not None
            and stored.get("head") == head
            and int(stored.get("offset", 0)) <= os.fstat(fh.fileno()).st_size
        ):
            del self._stored[fid]
            offset, skip = int(stored.get("offset", 0)), dict(stored.get("skip", {}))
            self._times[fid] = {int(k): int(v) for k, v in dict(stored.get("times", {})).items()}
        self.files[fid] = Followed(fid, ref, 0, "", path, fh, offset, skip=skip, last_growth=now, head=head)

    def poll(self, now: float, emit: Emit, budget: int) -> int:
        used = 0
        self._new_times = False
        for f in sorted(self.files.values(), key=lambda x: str(x.path)):
            if f.finished:
                continue
            if used < budget and f.fh is not None:
                used += self._read(f, now, emit, min(READ_CHUNK, budget - used))
            f.flush_due(now, emit)
            if f.gone and f.last_growth < now and now - f.last_growth >= self.finish_wait:
                self._finish(f, emit)
        if self._new_times:
            self.save_positions()  # the times first, then the records may leave (write-ahead)
        return used

    def _read(self, f: Followed, now: float, emit: Emit, limit: int) -> int:
        assert f.fh is not None
        try:
            size = os.fstat(f.fh.fileno()).st_size
            if size < f.offset and f.idle():
                # Truncated in place (copytruncate): start again; what it held beyond what we
                # had read is gone, and its first line now names it (a new identity).
                self.truncated += 1
                log.warning("volume log file %s was truncated; reading it from its start", f.path)
                f.offset, f.skip, f.acked_end, f.groupers = 0, {}, {}, {}
                f.head = head_of(f.fh)
                self._times[f.fid] = {}
        except OSError as exc:
            log.warning("cannot read %s: %s", f.path, exc)
            return 0
        data = f.read(limit)
        if not data:
            return 0
        read_ns = int(self.wall() * 1e9)
        times = self._times.setdefault(f.fid, {})
        consumed = 0
        for raw, start in iter_lines(data, f.offset):
            consumed = start + len(raw) - f.offset
            if start < f.skip.get("stdout", 0):
                continue  # stored before a restart
            text = raw.decode("utf-8", "replace").rstrip("\n")
            time_ns = times.get(start)
            if time_ns is None:
                time_ns = times[start] = line_time_ns(text) or read_ns
                self._new_times = True
            line = CriLine(
                time_ns, "stdout", False, text[:-1] if text.endswith("\r") else text, start, start + len(raw)
            )
            f.feed(line, now, emit, max_record_bytes=self.max_record_bytes, flush_after=self.flush_after)
        f.advance(data, consumed, limit, now)
        return len(data)

    def save_positions(self) -> None:
        for fid in [k for k, f in self.files.items() if f.finished and f.gone and f.idle()]:
            del self.files[fid]
        files = {}
        for fid, f in self.files.items():
            files[fid] = pos = f.position(self.root)
            safe = f.safe_offset()
            kept = {start: t for start, t in self._times.get(fid, {}).items() if start >= safe}
            self._times[fid] = kept
            pos["times"] = {str(start): t for start, t in kept.items()}
        for fid in set(self._times) - set(self.files):
            del self._times[fid]
        files.update(self._stored)
        self.positions.save(files, set())


class TailSet:
    """The CRI files and the volume files as one tail for :class:`NodeCollector`: the same loop,
    buffer, batches and acknowledgements; each keeps its own positions file."""

    def __init__(self, *tails: NodeTail | VolumeTail) -> None:
        self.tails = tails

    @property
    def files(self) -> dict[str, Followed]:
        out: dict[str, Followed] = {}
        for t in self.tails:
            out.update(t.files)
        return out

    @property
    def lost_files(self) -> int:
        return sum(t.lost_files for t in self.tails)

    def discover(self, now: float) -> None:
        for t in self.tails:
            t.discover(now)

    def poll(self, now: float, emit: Emit, budget: int) -> int:
        used = 0
        for t in self.tails:
            used += t.poll(now, emit, max(0, budget - used))
        return used

    # The acknowledgement bookkeeping lives on the Followed file itself (FileTail), so either
    # tail's methods serve a file of either kind.
    def sent(self, f: Followed, rec: Record) -> None:
        self.tails[0].sent(f, rec)

    def acked(self, f: Followed, rec: Record) -> None:
        self.tails[0].acked(f, rec)

    def save_positions(self) -> None:
        for t in self.tails:
            t.save_positions()

    def close(self) -> None:
        for t in self.tails:
            with contextlib.suppress(OSError):
                t.close()


# -- the command's part (``kubehub collect-node``) ------------------------------------------------
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--kubelet-root",
        default="/var/lib/kubelet",
        help="the kubelet's root directory, where pods' volumes live (default /var/lib/kubelet)",
    )
    p.add_argument(
        "--volume-files",
        choices=("on", "off"),
        default="on",
        help="read the log files pods ask for with kubehub.io/log-files (with --hub-url; default on)",
    )
    p.add_argument(
        "--volume-refresh", type=float, default=30.0, help="seconds between asking the hub which pods want files"
    )


def run_from_args(args: argparse.Namespace) -> int:
    """``kubehub collect-node``: the CRI collector, with the volume files added when it ships to
    a hub (the hub is what knows which pods ask; straight to Elasticsearch there is no one to ask)."""
    from hub.collectors.logs.nodecollector import build_from_args, collector_token

    collector = build_from_args(args)
    if args.hub_url and args.volume_files == "on":
        wanted = HubVolumeFiles(
            args.hub_url,
            collector_token(args),
            args.node,
            cluster=getattr(args, "cluster", ""),
            refresh=args.volume_refresh,
        )
        volumes = VolumeTail(
            Path(args.kubelet_root),
            PositionStore(Path(args.state_dir) / "volume-positions.json"),
            wanted,
            max_record_bytes=args.max_record_bytes,
            flush_after=args.flush_after,
        )
        # NodeCollector uses only the tail's discover/poll/sent/acked/save_positions/close/files/
        # lost_files, which TailSet provides for both kinds of file.
        cast(Any, collector).tail = TailSet(collector.tail, volumes)
    stop = threading.Event()

    def _stop(*_: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    log.info("collecting %s on node %s into %s", args.root, args.node, collector.sink.name)
    collector.run(stop)
    return 0
