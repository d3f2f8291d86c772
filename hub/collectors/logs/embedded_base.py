"""The embedded log store's files and words: constants, the day-file and catalog schemas, the
tokenization lines are indexed under (CJK runs as bigrams, the word rule of ``words.py``) and
keyword queries as SQLite FTS5 expressions, and the small records the store keeps (sources, day
files, scopes, plans). Pure; shared by the store (``embedded.py``) and its write path and planner.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hub.collectors.logs.query import And, Expr, Or, Term
from hub.collectors.logs.words import runs, simple_ascii

BACKEND = "embedded log store"


SLOT_BITS = 10  # 1,024 lines may share one microsecond before the key moves to the next one


SLOTS = 1 << SLOT_BITS


# Above this share of a day's lines the scope is checked by a join; below it the sources' tags
# go into the FTS query. Measured on 1M lines: a join filter passes ~1 row in 7 at this share,
# which costs about what intersecting posting lists does.
TAG_SHARE = 0.15


MAX_TAGS = 256  # an FTS OR of more tags than this is slower than the join


EXPORT_CHUNK = 2_000


READERS_PER_DAY = 8


_FILE = re.compile(r"^logs-(\d{4}-\d{2}-\d{2})\.sqlite3$")


# The words are cut by hub.collectors.logs.words; FTS5 only splits its output at spaces. The
# ascii tokenizer does exactly that for text we prepared (every non-ASCII character is a token
# character, ASCII letters are folded) and splits plain ASCII messages into runs of ASCII
# letters and digits by itself, which is the word rule for ASCII.
_TOKENIZER = "ascii"


_PARTITION_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS logs (id INTEGER PRIMARY KEY, src INTEGER NOT NULL, uid INTEGER NOT NULL, "
    "message TEXT NOT NULL)",
    f"CREATE VIRTUAL TABLE IF NOT EXISTS logs_fts USING fts5(body, tag, content='', tokenize=\"{_TOKENIZER}\")",
    "CREATE TABLE IF NOT EXISTS stats (src INTEGER PRIMARY KEY, lines INTEGER NOT NULL)",
    # Only for keyword-less histograms of part of a day (see histogram()); searches never use it.
    "CREATE INDEX IF NOT EXISTS logs_src_id ON logs (src, id)",
]


_CATALOG_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS namespaces (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)",
    "CREATE TABLE IF NOT EXISTS sources (id INTEGER PRIMARY KEY, ns INTEGER NOT NULL, workload TEXT NOT NULL, "
    "pod TEXT NOT NULL, container TEXT NOT NULL, node TEXT NOT NULL, pod_uid TEXT NOT NULL, "
    "first_t REAL NOT NULL, last_t REAL NOT NULL, ns_uid TEXT NOT NULL DEFAULT '', "
    "cluster TEXT NOT NULL DEFAULT '', "
    "UNIQUE (ns, pod, container, pod_uid, workload, node, ns_uid, cluster))",
]


# A catalog written before sources carried their namespace's UID: the table is rebuilt once
# (ids kept, every old source without a UID, so its lines keep the time floor).
_CATALOG_ADD_NS_UID = [
    "ALTER TABLE sources RENAME TO sources_before_ns_uid",
    _CATALOG_SCHEMA[1],
    "INSERT INTO sources(id, ns, workload, pod, container, node, pod_uid, first_t, last_t, ns_uid) "
    "SELECT id, ns, workload, pod, container, node, pod_uid, first_t, last_t, '' FROM sources_before_ns_uid",
    "DROP TABLE sources_before_ns_uid",
]


# A catalog written before sources carried their cluster: rebuilt once the same way (ids kept;
# every old source gets "", which reads as the implicit cluster: a single-cluster hub's lines
# stay its cluster's, and a namespace of the same name in an added cluster is a new source).
_CATALOG_ADD_CLUSTER = [
    "ALTER TABLE sources RENAME TO sources_before_cluster",
    _CATALOG_SCHEMA[1],
    "INSERT INTO sources(id, ns, workload, pod, container, node, pod_uid, first_t, last_t, ns_uid, cluster) "
    "SELECT id, ns, workload, pod, container, node, pod_uid, first_t, last_t, ns_uid, '' FROM sources_before_cluster",
    "DROP TABLE sources_before_cluster",
]


# (namespace, pod, container, pod UID, workload, node, namespace UID, cluster): what makes a source.
SourceKey = tuple[str, str, str, str, str, str, str, str]


def _grams(run: str) -> list[str]:
    return [run[i : i + 2] for i in range(len(run) - 1)]


def index_text(message: str) -> str:
    """The text FTS5 indexes for a message: its words, CJK runs as bigrams plus their last char.

    ``连接超时`` becomes ``连接 接超 超时 时``: a two-character term is one token, a longer one a
    phrase of bigrams, and the trailing character lets a phrase say "this run ends here".
    """
    if simple_ascii(message):
        return message  # the ascii tokenizer cuts and folds it exactly as runs() would
    out: list[str] = []
    for word, cjk in runs(message):
        if cjk and len(word) > 1:
            out.extend(_grams(word))
            out.append(word[-1])
        else:
            out.append(word)
    return " ".join(out)


def fts_phrase(text: str) -> str:
    """One search term as an FTS5 phrase that matches where the word rule says it does.

    The term's words must follow each other in a line. A CJK run may match inside a line's run:
    alone anywhere (its bigrams, or a prefix query for one character); as the first word of a
    longer term it must end its line run (the term also asks for the run's last character,
    which the index puts right before the next word); as the last word it must start one (it
    comes right after the previous word; one character is then a prefix); in the middle it must
    be the whole run.
    """
    words = list(runs(text))
    tokens: list[str] = []
    prefix = False
    for i, (word, cjk) in enumerate(words):
        last = i == len(words) - 1
        if not cjk:
            tokens.append(word)
        elif len(word) == 1:
            tokens.append(word)
            prefix = last
        else:
            tokens.extend(_grams(word))
            if not last:
                tokens.append(word[-1])
    return '"' + " ".join(tokens) + '"' + ("*" if prefix else "")


def fts_expr(expr: Expr) -> str:
    if isinstance(expr, Term):
        return fts_phrase(expr.text)
    if isinstance(expr, And):
        return "(" + " AND ".join(fts_expr(i) for i in expr.items) + ")"
    if isinstance(expr, Or):
        return "(" + " OR ".join(fts_expr(i) for i in expr.items) + ")"
    raise TypeError(expr)


def _day_of(ts: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ts))


@dataclass(frozen=True)
class Source:
    """Where lines come from; ``first_t``/``last_t`` bound the times of its lines (never narrower).

    ``ns_uid`` is the UID of the namespace the lines were logged in, empty when the writer did
    not know it (those lines are judged by the time floor). ``cluster`` is the cluster the
    lines were logged in."""

    id: int
    namespace: str
    ns_id: int
    workload: str
    pod: str
    container: str
    node: str
    pod_uid: str
    first_t: float
    last_t: float
    ns_uid: str = ""
    cluster: str = ""  # "": written without one (the implicit cluster's)

    @property
    def key(self) -> SourceKey:
        return (
            self.namespace,
            self.pod,
            self.container,
            self.pod_uid,
            self.workload,
            self.node,
            self.ns_uid,
            self.cluster,
        )


@dataclass
class _Day:
    day: str
    path: Path
    stats: dict[int, int] = field(default_factory=dict)  # source id -> lines; replaced, never mutated
    lines: int = 0
    readers: list[sqlite3.Connection] = field(default_factory=list)
    writer: sqlite3.Connection | None = None
    dropped: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass(frozen=True)
class _Scope:
    """The query's visibility resolved to sources: fully visible ones and floor-straddling ones."""

    unrestricted: bool
    full: frozenset[int] = frozenset()
    straddling: Mapping[int, float] = field(default_factory=dict)  # source id -> floor (epoch s)


@dataclass(frozen=True)
class _Plan:
    """How one day is asked: the FROM/WHERE, its parameters and the expression that is the line id."""

    from_where: str
    params: dict[str, Any]
    id_expr: str
