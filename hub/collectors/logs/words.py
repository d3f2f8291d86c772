"""What a word is in log search: the one rule both log stores index and match by.

The rule (docs/logs.md, "Words"):

- A **word** is a run of letters, digits and combining marks (Unicode general categories L, N
  and M, as Python's ``unicodedata`` classifies them). Everything else separates words:
  ``git:amd64`` is ``git`` and ``amd64``, ``archive's`` is ``archive`` and ``s``, ``1,000`` is
  ``1`` and ``000``, ``user_id`` is ``user`` and ``id``.
- **CJK** (Han, Hiragana, Katakana) letters form runs of their own: a change between a CJK
  letter and any other letter or digit ends a word, so ``オフセット404`` is ``オフセット`` and
  ``404``. A CJK run matches any run of characters inside it (Chinese and Japanese are written
  without spaces); other words match whole.
- Matching ignores case: each character is lowercased on its own (simple case mapping, as
  Java's ``Character.toLowerCase`` does, so ``İ`` is ``i`` and ``Σ`` is always ``σ``).
- Only the first 255 UTF-16 code units of a word count (Lucene refuses terms above 32 KiB, so
  Elasticsearch must cut somewhere, and both stores cut at the same place).

Why the hub cuts the words for both stores (Elasticsearch gets them ready in a field of their
own, split at spaces by its ``whitespace`` analyzer): one implementation cannot disagree with
itself. An analyzer of char filters and a pattern tokenizer would need Elasticsearch's
analysis-common module, which the integration-test distribution the sandbox runs does not ship,
and would classify characters by the JVM's Unicode tables rather than Python's (their versions
differ: a letter newer than one of them would be a word in one store and a separator in the
other).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator

MAX_WORD_UNITS = 255  # UTF-16 code units, Lucene's unit

# The version of this rule that stores record (embedded day files, Elasticsearch mappings), so
# that data indexed by an older rule is found and indexed again.
WORDS_VERSION = 2

# Blocks whose letters form CJK runs: Hiragana, Katakana (with phonetic extensions and the
# halfwidth forms), CJK Unified Ideographs with every extension, compatibility ideographs, and
# the ideographic iteration and closing marks and number zero (々 〆 〇 〻) that sit inside
# Chinese and Japanese words.
_CJK_BLOCKS = (
    (0x3005, 0x3007),
    (0x303B, 0x303B),
    (0x3040, 0x309F),
    (0x30A0, 0x30FF),
    (0x31F0, 0x31FF),
    (0x3400, 0x4DBF),
    (0x4E00, 0x9FFF),
    (0xF900, 0xFAFF),
    (0xFF66, 0xFF9F),
    (0x20000, 0x323AF),
)


def _is_word(cp: int) -> bool:
    return unicodedata.category(chr(cp))[0] in "LNM"


def _word_ranges() -> tuple[tuple[int, int], ...]:
    """Maximal code point ranges of word characters."""
    out: list[tuple[int, int]] = []
    start = -1
    for cp in range(0x110000):
        if _is_word(cp):
            if start < 0:
                start = cp
        elif start >= 0:
            out.append((start, cp - 1))
            start = -1
    if start >= 0:
        out.append((start, 0x10FFFF))
    return tuple(out)


def _py_class(ranges: tuple[tuple[int, int], ...]) -> str:
    return "".join(
        re.escape(chr(lo)) if lo == hi else f"{re.escape(chr(lo))}-{re.escape(chr(hi))}" for lo, hi in ranges
    )


def _split(ranges: tuple[tuple[int, int], ...]) -> tuple[tuple[tuple[int, int], ...], tuple[tuple[int, int], ...]]:
    """``ranges`` cut into the parts inside the CJK blocks and the parts outside them."""
    inside: list[tuple[int, int]] = []
    outside: list[tuple[int, int]] = []
    for lo, hi in ranges:
        cp = lo
        for b_lo, b_hi in _CJK_BLOCKS:
            if b_hi < cp or b_lo > hi:
                continue
            if b_lo > cp:
                outside.append((cp, b_lo - 1))
            inside.append((max(cp, b_lo), min(hi, b_hi)))
            cp = min(hi, b_hi) + 1
        if cp <= hi:
            outside.append((cp, hi))
    return _merge(inside), _merge(outside)


def _merge(ranges: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if out and out[-1][1] + 1 >= lo:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return tuple(out)


_WORD_RANGES = _word_ranges()
_CJK_RANGES, _OTHER_RANGES = _split(_WORD_RANGES)

_WORD_CHAR = re.compile(f"[{_py_class(_WORD_RANGES)}]")
# A run is a word: CJK letters together, or other letters, digits and marks together.
_RUN = re.compile(f"(?P<cjk>[{_py_class(_CJK_RANGES)}]+)|[{_py_class(_OTHER_RANGES)}]+")
_ASCII_LONG = re.compile(f"[A-Za-z0-9]{{{MAX_WORD_UNITS + 1}}}")
# Python's str.lower() uses full case mappings; these are the two places it differs from the
# per-character simple mapping Lucene's lowercase filter applies.
_SIMPLE_LOWER = str.maketrans({"\u0130": "i", "\u03a3": "\u03c3"})


def has_word(text: str) -> bool:
    """Whether ``text`` holds at least one word (anything to search for)."""
    return _WORD_CHAR.search(text) is not None


def fold(word: str) -> str:
    """A word as it is compared: lowercased character by character, cut to 255 UTF-16 units."""
    word = word.translate(_SIMPLE_LOWER).lower()
    if len(word) <= MAX_WORD_UNITS // 2:
        return word
    units = word.encode("utf-16-le")
    if len(units) <= 2 * MAX_WORD_UNITS:
        return word
    cut = units[: 2 * MAX_WORD_UNITS]
    try:
        return cut.decode("utf-16-le")
    except UnicodeDecodeError:
        # the cut split a surrogate pair: Lucene keeps the lone high surrogate and writes it
        # to the index as U+FFFD
        return cut[:-2].decode("utf-16-le") + "\ufffd"


def runs(text: str) -> Iterator[tuple[str, bool]]:
    """The words of ``text`` in order as (folded word, is a CJK run)."""
    for m in _RUN.finditer(text):
        if m.group("cjk") is not None:
            yield m.group(), True
        else:
            yield fold(m.group()), False


def match_spans(text: str, term: str) -> list[tuple[int, int]]:
    """Where ``term`` matches in ``text`` by the word rule, as (start, end) character offsets
    (for marking what matched; the stores answer whether it matches, this says where)."""
    words = [(m.start(), m.end(), m.group("cjk") is not None, m.group()) for m in _RUN.finditer(text)]
    line = [(start, end, cjk, raw if cjk else fold(raw)) for start, end, cjk, raw in words]
    want = list(runs(term))
    k = len(want)
    spans: list[tuple[int, int]] = []
    if not k:
        return spans
    if k == 1:
        word, cjk = want[0]
        for start, end, c, w in line:
            if cjk and c:
                at = w.find(word)
                while at >= 0:
                    spans.append((start + at, start + at + len(word)))
                    at = w.find(word, at + 1)
            elif not cjk and not c and w == word:
                spans.append((start, end))
        return spans
    for i in range(len(line) - k + 1):
        first, last = line[i], line[i + k - 1]
        w0, c0 = want[0]
        wl, cl = want[-1]
        if not (first[2] == c0 and (first[3].endswith(w0) if c0 else first[3] == w0)):
            continue
        if not (last[2] == cl and (last[3].startswith(wl) if cl else last[3] == wl)):
            continue
        if all(line[i + j][2] == c and line[i + j][3] == w for j, (w, c) in enumerate(want[1:-1], start=1)):
            spans.append((first[1] - len(w0) if c0 else first[0], last[0] + len(wl) if cl else last[1]))
    return spans


def simple_ascii(text: str) -> bool:
    """ASCII text whose words need no cutting: the embedded store's tokenizer splits it alone."""
    return text.isascii() and _ASCII_LONG.search(text) is None


# -- Elasticsearch -----------------------------------------------------------------------------------

# Stands between a CJK run and the word before or after it in the text Elasticsearch indexes. A
# private-use character is never a word character, so it cannot come from a message's words.
RUN_MARK = "\ue000"
_ASCII_SEPARATORS = re.compile(r"[^A-Za-z0-9]+")


def spaced_words(text: str) -> str:
    """The words of ``text`` separated by spaces, as the Elasticsearch store indexes them.

    Each CJK character is a word of its own and ``RUN_MARK`` stands between a CJK run and an
    adjacent word, so that a phrase of CJK characters lines up only inside one run and a CJK
    term next to another word must touch the run's edge. The same text of a query term, given
    to ``match_phrase``, then matches exactly where the word rule says (the embedded store gets
    there with bigrams). Lowercased and cut like every word.
    """
    if simple_ascii(text):
        return _ASCII_SEPARATORS.sub(" ", text).lower().strip()
    out: list[str] = []
    previous_cjk: bool | None = None
    for word, cjk in runs(text):
        if previous_cjk is not None and (cjk or previous_cjk):
            out.append(RUN_MARK)
        out.extend(word if cjk else (word,))
        previous_cjk = cjk
    return " ".join(out)
