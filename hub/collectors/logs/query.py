"""Keyword syntax of log search, parsed once into a small tree every backend compiles.

Syntax (see docs/logs.md):

- ``a b``: both (space is AND); ``a AND b`` says the same.
- ``a OR b``: either. OR binds tighter than the implied AND, as in web search engines:
  ``error timeout OR 超时`` is ``error AND (timeout OR 超时)``.
- ``"connection refused"``: the words in this order, next to each other.
- Chinese text needs no spaces: ``超时`` finds 连接超时 and 请求超时了.
- Matching ignores case. ``OR``/``AND`` are operators only in capitals; ``or`` is a word.

A term is cut into words by one rule (``hub.collectors.logs.words``: runs of letters or
digits; CJK runs apart from the rest): other words match whole (``time`` does not find
``timeout``, ``amd64`` finds ``git:amd64``), CJK runs match inside one run. Both stores index by
that rule, so they answer alike.

Malformed input (an unbalanced quote, a dangling OR, an empty phrase, a term with nothing to
search for) is an InvalidInput naming ``q`` and the 1-based column of the problem.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hub.collectors.logs.words import has_word
from hub.errors import InvalidInput

MAX_QUERY_CHARS = 1000
MAX_TERMS = 64


@dataclass(frozen=True)
class Term:
    """Text whose tokens must appear next to each other, in order (a one-word term is a phrase of one)."""

    text: str


@dataclass(frozen=True)
class And:
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Expr, ...]


Expr = Term | And | Or


class KeywordSyntaxError(InvalidInput):
    """A 400 that also says where in ``q`` the problem is (1-based column)."""

    def __init__(self, message: str, *, column: int) -> None:
        super().__init__(f"q: {message} at column {column}", field="q")
        self.column = column

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = super().to_dict()
        body["position"] = self.column
        return body


def searchable(text: str) -> bool:
    """Whether ``text`` holds a word (a letter, digit or mark; see hub.collectors.logs.words)."""
    return has_word(text)


@dataclass(frozen=True)
class _Tok:
    kind: str  # "word", "phrase", "or", "and"
    text: str
    column: int  # 1-based


def _lex(q: str) -> list[_Tok]:
    tokens: list[_Tok] = []
    i, n = 0, len(q)
    while i < n:
        ch = q[i]
        if ch.isspace():
            i += 1
            continue
        if ch == '"':
            start = i
            i += 1
            buf: list[str] = []
            closed = False
            while i < n:
                c = q[i]
                if c == "\\" and i + 1 < n and q[i + 1] in '"\\':
                    buf.append(q[i + 1])
                    i += 2
                    continue
                if c == '"':
                    closed = True
                    i += 1
                    break
                buf.append(c)
                i += 1
            if not closed:
                raise KeywordSyntaxError("unbalanced quote: the phrase opened here is never closed", column=start + 1)
            phrase = "".join(buf)
            if not phrase.strip():
                raise KeywordSyntaxError("empty phrase", column=start + 1)
            if not searchable(phrase):
                raise KeywordSyntaxError(
                    f"the phrase {phrase!r} has no letters or digits to search for", column=start + 1
                )
            tokens.append(_Tok("phrase", phrase, start + 1))
            continue
        start = i
        while i < n and not q[i].isspace() and q[i] != '"':
            i += 1
        word = q[start:i]
        if word == "OR":
            tokens.append(_Tok("or", word, start + 1))
        elif word == "AND":
            tokens.append(_Tok("and", word, start + 1))
        else:
            if not searchable(word):
                raise KeywordSyntaxError(f"{word!r} has no letters or digits to search for", column=start + 1)
            tokens.append(_Tok("word", word, start + 1))
    return tokens


def parse_keywords(q: str | None) -> Expr | None:
    """Parse the ``q`` parameter; None when there is nothing to search for (match every line)."""
    if q is None or not q.strip():
        return None
    if len(q) > MAX_QUERY_CHARS:
        raise InvalidInput(f"q: at most {MAX_QUERY_CHARS} characters, got {len(q)}", field="q")
    tokens = _lex(q)
    terms = [t for t in tokens if t.kind in ("word", "phrase")]
    if len(terms) > MAX_TERMS:
        raise InvalidInput(f"q: at most {MAX_TERMS} terms, got {len(terms)}", field="q")

    conjuncts: list[Expr] = []
    alternatives: list[Expr] = []
    expect_term = True  # after OR/AND (or at the start) a term must come next
    pending_or = False
    last_op: _Tok | None = None
    for tok in tokens:
        if tok.kind in ("or", "and"):
            if expect_term:
                raise KeywordSyntaxError(f"{tok.text} needs a term before it", column=tok.column)
            expect_term = True
            pending_or = tok.kind == "or"
            last_op = tok
            continue
        term = Term(tok.text)
        if pending_or:
            alternatives.append(term)
        else:
            if alternatives:
                conjuncts.append(_or(alternatives))
            alternatives = [term]
        pending_or = False
        expect_term = False
    if expect_term and last_op is not None:
        raise KeywordSyntaxError(f"{last_op.text} needs a term after it", column=last_op.column)
    if alternatives:
        conjuncts.append(_or(alternatives))
    if not conjuncts:
        return None
    return conjuncts[0] if len(conjuncts) == 1 else And(tuple(conjuncts))


def _or(items: list[Expr]) -> Expr:
    unique = list(dict.fromkeys(items))
    return unique[0] if len(unique) == 1 else Or(tuple(unique))


def terms_of(expr: Expr | None) -> list[str]:
    """Every term's text, for highlighting and audit details."""
    if expr is None:
        return []
    if isinstance(expr, Term):
        return [expr.text]
    out: list[str] = []
    for item in expr.items:
        out.extend(terms_of(item))
    return out


def describe(expr: Expr | None) -> str:
    """A canonical text form (the same tree always prints the same)."""
    if expr is None:
        return ""
    if isinstance(expr, Term):
        return '"' + expr.text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(expr, Or):
        return "(" + " OR ".join(describe(i) for i in expr.items) + ")"
    return " ".join(describe(i) for i in expr.items)
