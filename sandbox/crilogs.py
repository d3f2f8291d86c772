"""Container log files as a kubelet and its CRI runtime keep them, for simulated nodes.

KWOK plays kubelets but writes no ``/var/log/pods``; this module writes that tree for the
sandbox's node simulator (:mod:`sandbox.nodesim`), the node collector's tests and
``bench/collector.py``, with the real layout and rotation:

- ``<root>/<namespace>_<pod>_<pod-uid>/<container>/<restart>.log``, lines
  ``<RFC3339Nano> <stdout|stderr> <P|F> <message>``; a line longer than ``partial_bytes``
  (containerd: 16 KiB) is written as ``P`` pieces and a last ``F`` piece.
- Rotation, as the kubelet's container log manager does it when the file reaches ``max_size``:
  remove leftover ``.tmp`` files, remove the oldest rotated files so that at most
  ``max_files - 2`` remain, gzip every uncompressed rotated file (to ``<name>.gz.tmp``, renamed
  to ``<name>.gz``, then the original removed), rename the live file to
  ``<name>.<YYYYMMDD-HHMMSS>``, and have the runtime reopen a new live file.
- A deleted pod's directory is removed whole.

Every record written is also returned (and kept by :class:`Oracle`), so a test can compare
what a collector stored with what was really written, independently of the collector's code.
"""

from __future__ import annotations

import datetime as dt
import gzip
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

TIMESTAMP_FORMAT = "%Y%m%d-%H%M%S"  # the kubelet's rotation suffix (Go: 20060102-150405)


def cri_time(t: float) -> str:
    ns = round(t * 1e9)
    sec, frac = divmod(ns, 1_000_000_000)
    return dt.datetime.fromtimestamp(sec, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:09d}Z"


@dataclass
class Oracle:
    """What was written: per container key (namespace/pod/container), the logical records."""

    records: dict[str, list[str]] = field(default_factory=dict)
    times: dict[str, list[float]] = field(default_factory=dict)

    def add(self, key: str, message: str, t: float) -> None:
        self.records.setdefault(key, []).append(message)
        self.times.setdefault(key, []).append(t)

    def count(self) -> int:
        return sum(len(v) for v in self.records.values())


class ContainerLog:
    """One container's live log file plus its rotated ones, written like a CRI runtime does."""

    def __init__(
        self,
        root: Path,
        namespace: str,
        pod: str,
        pod_uid: str,
        container: str,
        *,
        restart: int = 0,
        max_size: int = 10 * 1024 * 1024,
        max_files: int = 5,
        partial_bytes: int = 16 * 1024,
        clock: Callable[[], float] = time.time,
        oracle: Oracle | None = None,
        keep_open: bool = True,
    ) -> None:
        self.dir = root / f"{namespace}_{pod}_{pod_uid}" / container
        self.dir.mkdir(parents=True, exist_ok=True)
        self.key = f"{namespace}/{pod}/{container}"
        self.path = self.dir / f"{restart}.log"
        self.max_size, self.max_files, self.partial_bytes = max_size, max_files, partial_bytes
        self.clock = clock
        self.oracle = oracle
        # The runtime keeps its log open; a generator of 20,000 containers in one process
        # (bench/collector.py) opens each file per write instead, within the descriptor limit.
        self.keep_open = keep_open
        self._fh = open(self.path, "ab")  # noqa: SIM115
        self._last_stamp = ""
        if not keep_open:
            self._fh.close()

    def write(self, message: str, *, stream: str = "stdout", t: float | None = None, lines: bool = True) -> float:
        """Write one logical record: each ``\\n``-separated line a CRI line (``lines``), long
        lines cut into P pieces. Rotates first when the file is full. Returns the time written."""
        if not self.keep_open:
            self._fh = open(self.path, "ab")  # noqa: SIM115
        if self._fh.tell() >= self.max_size:
            self.rotate()
        when = self.clock() if t is None else t
        stamp = cri_time(when)
        out = bytearray()
        for line in message.split("\n") if lines else [message]:
            data = line.encode("utf-8")
            while len(data) > self.partial_bytes:
                cut = self.partial_bytes
                while cut > 0 and (data[cut] & 0xC0) == 0x80:  # never inside a UTF-8 character
                    cut -= 1
                out += f"{stamp} {stream} P ".encode() + data[:cut] + b"\n"
                data = data[cut:]
            out += f"{stamp} {stream} F ".encode() + data + b"\n"
        self._fh.write(bytes(out))
        self._fh.flush()
        if not self.keep_open:
            self._fh.close()
        if self.oracle is not None:
            self.oracle.add(self.key, message, when)
        return when

    def rotate(self) -> None:
        """The kubelet's rotation (see the module docstring), then the runtime's reopen."""
        base = self.path.name
        rotated = sorted(p for p in os.listdir(self.dir) if p.startswith(base + "."))
        for name in [p for p in rotated if p.endswith(".tmp")]:
            os.remove(self.dir / name)
        rotated = [p for p in rotated if not p.endswith(".tmp")]
        # a file already compressed is not in use
        rotated = [p for p in rotated if not (not p.endswith(".gz") and p + ".gz" in rotated)]
        keep = max(self.max_files - 2, 0)
        for name in rotated[: max(len(rotated) - keep, 0)]:
            os.remove(self.dir / name)
        rotated = rotated[max(len(rotated) - keep, 0) :]
        for name in rotated:
            if name.endswith(".gz"):
                continue
            src = self.dir / name
            tmp = self.dir / (name + ".gz.tmp")
            with open(src, "rb") as r, gzip.open(tmp, "wb") as w:
                shutil.copyfileobj(r, w)
            os.replace(tmp, self.dir / (name + ".gz"))
            os.remove(src)
        stamp = dt.datetime.fromtimestamp(self.clock(), dt.UTC).strftime(TIMESTAMP_FORMAT)
        if stamp <= self._last_stamp:  # two rotations in one second: the next second's name
            last = dt.datetime.strptime(self._last_stamp, TIMESTAMP_FORMAT)
            stamp = (last + dt.timedelta(seconds=1)).strftime(TIMESTAMP_FORMAT)
        self._last_stamp = stamp
        os.rename(self.path, self.dir / f"{base}.{stamp}")
        self._fh.close()  # ReopenContainerLog
        self._fh = open(self.path, "ab")  # noqa: SIM115

    def restart(self, restart: int) -> None:
        """The container restarted: the runtime writes ``<restart>.log`` from now on."""
        self._fh.close()
        self.path = self.dir / f"{restart}.log"
        self._fh = open(self.path, "ab")  # noqa: SIM115
        self._last_stamp = ""

    def close(self) -> None:
        self._fh.close()


def delete_pod(root: Path, namespace: str, pod: str, pod_uid: str) -> None:
    """The kubelet removes a deleted pod's log directory whole."""
    shutil.rmtree(root / f"{namespace}_{pod}_{pod_uid}", ignore_errors=True)


def node_root(state_dir: Path, node: str) -> Path:
    """Where a simulated node's ``/var/log/pods`` lives in the sandbox's state directory."""
    return state_dir / "nodes" / node / "var" / "log" / "pods"


# -- what the tests and the bench write, and how they compare --------------------------------------
JAVA_TRACE = (
    "java.lang.IllegalStateException: order {n} not found\n"
    "\tat com.example.shop.OrderService.load(OrderService.java:{n})\n"
    "\tat com.example.shop.Api.handle(Api.java:88)\n"
    "Caused by: java.sql.SQLException: timeout after {n} ms\n"
    "\tat org.postgresql.Driver.exec(Driver.java:301)\n"
    "\t... 14 more"
)
PY_TRACE = (
    "Traceback (most recent call last):\n"
    '  File "/app/worker.py", line {n}, in run\n'
    "    job.execute()\n"
    '  File "/app/jobs.py", line 12, in execute\n'
    "    raise KeyError(key)\n"
    "KeyError: 'job-{n}'"
)


def sample_record(n: int) -> tuple[str, str]:
    """(stream, message) number ``n`` of a deterministic mix: plain lines, Chinese lines, a Java
    stack trace, a Python traceback and a line longer than one CRI piece."""
    kind = n % 50
    if kind == 7:
        return "stderr", JAVA_TRACE.format(n=n)
    if kind == 19:
        return "stderr", PY_TRACE.format(n=n)
    if kind == 33:
        return "stdout", f"payload {n} " + "x" * 20_000
    if kind % 5 == 1:
        return "stdout", f"订单 {n} 支付失败: 连接超时"
    return "stdout", f"GET /api/v1/items/{n} 200 {n % 97}ms"


def compare(oracle: Oracle, stored: list[tuple[str, str]]) -> tuple[int, int, int]:
    """(lost, duplicated, unexpected) of ``stored`` (container key, message) against what was written."""
    from collections import Counter

    want = Counter((k, m) for k, msgs in oracle.records.items() for m in msgs)
    got = Counter(stored)
    lost = sum((want - got).values())
    extra = got - want
    duplicated = sum(min(extra[k], got[k] - 1) for k in extra if k in want)
    unexpected = sum(v for k, v in extra.items() if k not in want)
    return lost, duplicated, unexpected
