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

Why the character classes are spelled out as code point ranges: the embedded store classifies
with Python's Unicode tables and Elasticsearch with the JVM's, and their Unicode versions differ
(a letter added to Unicode after Python's version would be a word in one store and a separator
in the other). ``java_word_class()`` writes Python's classification out for the Elasticsearch
analyzer, so both stores agree character for character whatever JVM runs Elasticsearch.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator

MAX_WORD_UNITS = 255  # UTF-16 code units, Lucene's unit

# Blocks whose letters form CJK runs: Hiragana, Katakana (with phonetic extensions and the
# halfwidth forms), CJK Unified Ideographs with every extension, compatibility ideographs.
_CJK_BLOCKS = (
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


def simple_ascii(text: str) -> bool:
    """ASCII text whose words need no cutting: the embedded store's tokenizer splits it alone."""
    return text.isascii() and _ASCII_LONG.search(text) is None


# -- Elasticsearch -----------------------------------------------------------------------------------


def _java_range(lo: int, hi: int) -> str:
    return f"\\x{{{lo:X}}}" if lo == hi else f"\\x{{{lo:X}}}-\\x{{{hi:X}}}"


def _java_tree(ranges: tuple[tuple[int, int], ...]) -> str:
    """A Java character class for ``ranges`` shaped as a search tree.

    Java evaluates a class's ranges one after another, which for 781 ranges would cost
    hundreds of comparisons per character; each level here first checks which half of the
    code points the character is in (``[lo-mid&&[...]]`` short-circuits), so a character costs
    about ten comparisons.
    """
    if len(ranges) <= 4:
        return "[" + "".join(_java_range(lo, hi) for lo, hi in ranges) + "]"
    mid = len(ranges) // 2
    left, right = ranges[:mid], ranges[mid:]
    split = right[0][0]
    return f"[[{_java_range(0, split - 1)}&&{_java_tree(left)}][{_java_range(split, 0x10FFFF)}&&{_java_tree(right)}]]"


def java_word_class() -> str:
    """The Java regex class of word characters, exactly Python's (see the module docstring)."""
    return _java_tree(_WORD_RANGES)


def java_cjk_class() -> str:
    """The Java regex class of CJK word characters (few ranges: a flat class is fast enough)."""
    return "[" + "".join(_java_range(lo, hi) for lo, hi in _CJK_RANGES) + "]"
