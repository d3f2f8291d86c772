"""The simulated usage of pods and nodes, in one place.

The same numbers come out of three producers, and they must agree:

* KWOK evaluates the pod formulas live, as CEL expressions (:func:`kwok_usage_cel`), for its
  cAdvisor-style endpoint;
* the node simulator (:mod:`sandbox.nodesim`) evaluates the node formulas live;
* the backfill (:mod:`sandbox.backfill`) evaluates both over the last 24 hours.

Pods: usage per container is the ``kubehub.io/cpu`` / ``kubehub.io/memory`` annotation when set
(exact, flat: tests and demos drive alerts with it), otherwise a base from
``kubehub.io/cpu-base`` / ``kubehub.io/memory-base`` (set by the seeder per workload) times a
daily shape: lowest at 02:00 UTC, highest at 14:00 UTC.

Nodes: a deterministic per-node base utilisation (from a hash of the name, so every run and the
backfill agree), shaped by the day and a slow wave, overridden by the node annotations.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

DAY = 86400.0
TROUGH_OFFSET = 79200  # seconds added to Unix time so that 0 falls at 02:00 UTC (the daily low)

ANN_CPU = "kubehub.io/cpu"
ANN_MEMORY = "kubehub.io/memory"
ANN_CPU_BASE = "kubehub.io/cpu-base"
ANN_MEMORY_BASE = "kubehub.io/memory-base"

DEFAULT_CPU_BASE = 0.05  # cores: a container idling along
DEFAULT_MEMORY_BASE = 64 * 1024 * 1024  # bytes
NET_RX_PER_CORE = 2_000_000.0  # bytes/s of traffic per core of CPU used: web-ish ratio
NET_TX_RATIO = 0.6
MEMORY_USAGE_OVER_WORKING_SET = 1.25  # page cache on top of the working set


def tri(t: float) -> float:
    """0 at 02:00 UTC rising linearly to 1 at 14:00 UTC and back: the daily load curve."""
    s = (int(t) + TROUGH_OFFSET) % int(DAY)
    return s / 43200.0 if s <= 43200 else (DAY - s) / 43200.0


def pod_cpu_shape(t: float) -> float:
    return 0.55 + 0.45 * tri(t)


def pod_memory_shape(t: float) -> float:
    return 0.85 + 0.15 * tri(t)


def parse_quantity(text: str | None) -> float | None:
    """Kubernetes quantity (``250m``, ``1.5``, ``128Mi``, ``2G``) as a float; None if absent or bad."""
    if text is None:
        return None
    text = str(text).strip()
    suffixes = {
        "Ki": 1024.0, "Mi": 1024.0**2, "Gi": 1024.0**3, "Ti": 1024.0**4, "Pi": 1024.0**5, "Ei": 1024.0**6,
        "n": 1e-9, "u": 1e-6, "m": 1e-3, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
    }  # fmt: skip
    for suffix in sorted(suffixes, key=len, reverse=True):
        if text.endswith(suffix):
            try:
                return float(text[: -len(suffix)]) * suffixes[suffix]
            except ValueError:
                return None
    try:
        return float(text)
    except ValueError:
        return None


def container_cpu(annotations: dict[str, str], t: float) -> float:
    """Cores used by each container of a pod at time t (same formula as the CEL in KWOK)."""
    fixed = parse_quantity(annotations.get(ANN_CPU))
    if fixed is not None:
        return fixed
    base = parse_quantity(annotations.get(ANN_CPU_BASE))
    return (DEFAULT_CPU_BASE if base is None else base) * pod_cpu_shape(t)


def container_memory(annotations: dict[str, str], t: float) -> float:
    fixed = parse_quantity(annotations.get(ANN_MEMORY))
    if fixed is not None:
        return fixed
    base = parse_quantity(annotations.get(ANN_MEMORY_BASE))
    return (DEFAULT_MEMORY_BASE if base is None else base) * pod_memory_shape(t)


# ---- the same formulas in KWOK's CEL ---------------------------------------------------------

_CEL_SECONDS = f"double((int(UnixSecond(Now())) + {TROUGH_OFFSET}) % 86400)"
CEL_TRI = f"({_CEL_SECONDS} <= 43200.0 ? {_CEL_SECONDS} / 43200.0 : (86400.0 - {_CEL_SECONDS}) / 43200.0)"


def _cel_annotated(fixed: str, base: str, default: str, shape: str) -> str:
    ann = "pod.metadata.annotations"
    return (
        f'"{fixed}" in {ann} ? Quantity({ann}["{fixed}"]) : '
        f'(("{base}" in {ann} ? Quantity({ann}["{base}"]) : Quantity("{default}")) * ({shape}))'
    )


def kwok_usage_cel() -> dict[str, str]:
    """CEL expressions of a ClusterResourceUsage, one per simulated resource."""
    cpu = _cel_annotated(ANN_CPU, ANN_CPU_BASE, f"{int(DEFAULT_CPU_BASE * 1000)}m", f"0.55 + 0.45 * {CEL_TRI}")
    memory = _cel_annotated(ANN_MEMORY, ANN_MEMORY_BASE, str(DEFAULT_MEMORY_BASE), f"0.85 + 0.15 * {CEL_TRI}")
    # Network follows CPU: a container that works hard also talks more.
    rx = f"({cpu}) * {NET_RX_PER_CORE}"
    tx = f"({cpu}) * {NET_RX_PER_CORE * NET_TX_RATIO}"
    return {"cpu": cpu, "memory": memory, "network-rx": rx, "network-tx": tx}


# ---- nodes -------------------------------------------------------------------------------------

CPU_MODES = {
    # share of the busy time per mode (idle takes the rest); sums to 1
    "user": 0.62, "system": 0.25, "iowait": 0.05, "softirq": 0.03, "irq": 0.01, "nice": 0.03, "steal": 0.01,
}  # fmt: skip
DISK_SIZE = 100 * 1024**3
DISK_FILES = 6_553_600


def _frac(name: str, salt: str) -> float:
    return (zlib.crc32(f"{salt}:{name}".encode()) & 0xFFFFFFFF) / 0xFFFFFFFF


@dataclass(frozen=True)
class NodeProfile:
    name: str
    cores: int
    memory_bytes: float
    cpu_base: float  # mean CPU utilisation 0..1
    memory_base: float  # mean memory utilisation 0..1
    disk_base: float  # filesystem fill 0..1
    inode_base: float
    phase: float  # seconds the node's daily curve is shifted by
    uptime: float  # seconds the node had been up 24 h before the sandbox was seeded

    @staticmethod
    def of(name: str, cores: int, memory_bytes: float) -> NodeProfile:
        return NodeProfile(
            name=name,
            cores=max(1, cores),
            memory_bytes=memory_bytes,
            cpu_base=0.12 + 0.38 * _frac(name, "cpu"),
            memory_base=0.30 + 0.40 * _frac(name, "mem"),
            disk_base=0.25 + 0.45 * _frac(name, "disk"),
            inode_base=0.05 + 0.25 * _frac(name, "inode"),
            phase=(_frac(name, "phase") - 0.5) * 3 * 3600,
            uptime=(3 + 27 * _frac(name, "uptime")) * DAY,
        )


def _clamp(x: float, lo: float = 0.01, hi: float = 0.99) -> float:
    return max(lo, min(hi, x))


def node_cpu_util(p: NodeProfile, t: float, override: float | None = None) -> float:
    if override is not None:
        return _clamp(override, 0.0, 1.0)
    wave = 0.04 * math.sin(2 * math.pi * t / 5400.0 + 7 * _frac(p.name, "wave"))
    return _clamp(p.cpu_base * (0.7 + 0.6 * tri(t + p.phase)) + wave)


def node_memory_util(p: NodeProfile, t: float, override: float | None = None) -> float:
    if override is not None:
        return _clamp(override, 0.0, 1.0)
    return _clamp(p.memory_base * (0.9 + 0.2 * tri(t + p.phase)))


def node_disk_util(p: NodeProfile, t: float) -> float:
    # Fills slowly over the day (logs) and is cleaned at 03:00: a sawtooth.
    day_part = ((t + p.phase + 75600) % DAY) / DAY  # 0 at 03:00 UTC
    return _clamp(p.disk_base + 0.05 * day_part)


def node_rates(p: NodeProfile, util: float) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Per-second increase of every node counter at a CPU utilisation (series key -> rate)."""
    rates: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    busy = util
    for core in range(p.cores):
        rates[("node_cpu_seconds_total", (("cpu", str(core)), ("mode", "idle")))] = 1.0 - busy
        for mode, share in CPU_MODES.items():
            rates[("node_cpu_seconds_total", (("cpu", str(core)), ("mode", mode)))] = busy * share
    io = 0.2 + util
    scale = p.cores / 8.0
    disk = (("device", "vda"),)
    rates[("node_disk_read_bytes_total", disk)] = 1.5e6 * io * scale
    rates[("node_disk_written_bytes_total", disk)] = 3.0e6 * io * scale
    rates[("node_disk_reads_completed_total", disk)] = 1.5e6 * io * scale / 16384
    rates[("node_disk_writes_completed_total", disk)] = 3.0e6 * io * scale / 8192
    rx = 4.0e6 * (0.1 + util) * scale
    rates[("node_network_receive_bytes_total", (("device", "eth0"),))] = rx
    rates[("node_network_transmit_bytes_total", (("device", "eth0"),))] = rx * 0.6
    rates[("node_network_receive_bytes_total", (("device", "lo"),))] = 2.0e5
    rates[("node_network_transmit_bytes_total", (("device", "lo"),))] = 2.0e5
    return rates


def node_gauges(
    p: NodeProfile, t: float, *, cpu_override: float | None = None, memory_override: float | None = None
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    mem = node_memory_util(p, t, memory_override)
    disk = node_disk_util(p, t)
    fs = (("device", "/dev/vda1"), ("fstype", "ext4"), ("mountpoint", "/"))
    return {
        ("node_memory_MemTotal_bytes", ()): p.memory_bytes,
        ("node_memory_MemAvailable_bytes", ()): round(p.memory_bytes * (1.0 - mem)),
        ("node_load1", ()): round(p.cores * node_cpu_util(p, t, cpu_override) * 1.05, 3),
        ("node_load5", ()): round(p.cores * node_cpu_util(p, t - 300, cpu_override), 3),
        ("node_load15", ()): round(p.cores * node_cpu_util(p, t - 900, cpu_override) * 0.95, 3),
        ("node_filesystem_size_bytes", fs): DISK_SIZE,
        ("node_filesystem_avail_bytes", fs): round(DISK_SIZE * (1.0 - disk)),
        ("node_filesystem_files", fs): DISK_FILES,
        ("node_filesystem_files_free", fs): round(DISK_FILES * (1.0 - p.inode_base - 0.02 * disk)),
    }


def node_initial_counters(p: NodeProfile) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Counter values of a node that has been up ``p.uptime`` seconds at its base load."""
    return {k: v * p.uptime for k, v in node_rates(p, p.cpu_base).items()}
