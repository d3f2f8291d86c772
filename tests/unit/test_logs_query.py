"""Keyword syntax, the word rule and the embedded store's tokens (the differential test,
tests/integration/test_logs_words_differential.py, checks both stores against an oracle)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.collectors.logs.embedded import WORDS_VERSION, EmbeddedLogStore, fts_expr, fts_phrase, index_text
from hub.collectors.logs.query import And, KeywordSyntaxError, Or, Term, describe, parse_keywords, terms_of
from hub.collectors.logs.store import LogQuery, LogRecord, parse_rfc3339_ns, strip_ansi
from hub.collectors.logs.words import MAX_WORD_UNITS, RUN_MARK, fold, match_spans, runs, spaced_words
from hub.errors import InvalidInput
from web.params import log_params

pytestmark = pytest.mark.unit


def test_space_is_and_and_or_binds_tighter() -> None:
    assert parse_keywords("a b") == And((Term("a"), Term("b")))
    assert parse_keywords("a OR b") == Or((Term("a"), Term("b")))
    assert parse_keywords("error timeout OR 超时") == And((Term("error"), Or((Term("timeout"), Term("超时")))))
    assert parse_keywords("a AND b OR c") == And((Term("a"), Or((Term("b"), Term("c")))))


def test_quotes_make_one_phrase_and_escapes_work() -> None:
    assert parse_keywords('"connection refused" db') == And((Term("connection refused"), Term("db")))
    assert parse_keywords(r'"say \"hi\""') == Term('say "hi"')
    assert parse_keywords('x"y z"') == And((Term("x"), Term("y z")))


def test_lowercase_or_is_a_word_and_blank_is_no_filter() -> None:
    assert parse_keywords("this or that") == And((Term("this"), Term("or"), Term("that")))
    assert parse_keywords("   ") is None
    assert parse_keywords(None) is None


@pytest.mark.parametrize(
    ("q", "column", "words"),
    [
        ('error "connection', 7, "unbalanced quote"),
        ('"', 1, "unbalanced quote"),
        ("OR a", 1, "needs a term before it"),
        ("a OR", 3, "needs a term after it"),
        ("a OR OR b", 6, "needs a term before it"),
        ("a AND", 3, "needs a term after it"),
        ('a ""', 3, "empty phrase"),
        ('a "  "', 3, "empty phrase"),
        ("a --- b", 3, "no letters or digits"),
    ],
)
def test_malformed_keywords_name_q_and_the_column(q: str, column: int, words: str) -> None:
    with pytest.raises(KeywordSyntaxError) as err:
        parse_keywords(q)
    assert err.value.field == "q"
    assert err.value.column == column
    assert words in err.value.message
    assert err.value.to_dict()["position"] == column


def test_overlong_queries_are_refused() -> None:
    with pytest.raises(InvalidInput):
        parse_keywords("a" * 1001)
    with pytest.raises(InvalidInput):
        parse_keywords(" ".join(f"w{i}" for i in range(65)))


_words = st.text(alphabet=st.sampled_from("abcxyz超时失败数据库_9 \"'-"), min_size=0, max_size=30)


@settings(max_examples=300, deadline=None)
@given(_words)
def test_any_input_parses_or_fails_with_a_400(text: str) -> None:
    try:
        expr = parse_keywords(text)
    except InvalidInput as exc:
        assert exc.status == 400 and exc.field == "q"
        return
    if expr is not None:
        assert parse_keywords(describe(expr)) == expr
        assert all(terms_of(expr))


@settings(max_examples=200, deadline=None)
@given(_words)
def test_every_parsed_query_is_valid_fts5(text: str) -> None:
    try:
        expr = parse_keywords(text)
    except InvalidInput:
        return
    if expr is None:
        return
    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE f USING fts5(body, tag, content='', tokenize=\"ascii\")")
    db.execute("SELECT rowid FROM f WHERE f MATCH ?", (f"body : ({fts_expr(expr)})",)).fetchall()


# -- words -----------------------------------------------------------------------------------------


def test_words_are_runs_of_letters_or_digits_and_cjk_runs_stand_apart() -> None:
    assert list(runs("git:amd64 archive's 1,000 user_id")) == [
        (w, False) for w in ("git", "amd64", "archive", "s", "1", "000", "user", "id")
    ]
    assert list(runs("オフセット404を指定")) == [("オフセット", True), ("404", False), ("を指定", True)]
    assert list(runs("指定。版本控制")) == [("指定", True), ("版本控制", True)]
    assert list(runs("人々が〆切")) == [("人々が〆切", True)]  # the iteration and closing marks are CJK
    # combining marks belong to their word; case folds per character, as Lucene's filter does
    assert list(runs("Cafe\u0301 İSTANBUL ΟΔΟΣ")) == [("cafe\u0301", False), ("istanbul", False), ("οδοσ", False)]
    assert fold("x" * 300) == "x" * MAX_WORD_UNITS


def test_elasticsearch_gets_cjk_characters_apart_with_a_mark_at_each_run_edge() -> None:
    m = RUN_MARK
    assert spaced_words("Fetched git:AMD64, user_id=7") == "fetched git amd64 user id 7"
    assert spaced_words("error连接超时 done") == f"error {m} 连 接 超 时 {m} done"
    assert spaced_words("指定。版本控制") == f"指 定 {m} 版 本 控 制"  # 定版本 cannot line up across the mark
    assert spaced_words("超时") == "超 时"  # a term alone carries no mark: it may sit anywhere in a run
    assert spaced_words("x\ue000y") == "x y"  # a private-use character in the text is a separator


def test_cjk_runs_are_indexed_as_bigrams_plus_their_last_character() -> None:
    assert index_text("连接超时 after 30s") == "连接 接超 超时 时 after 30s"
    assert index_text("error超时") == "error 超时 时"
    assert index_text("超 x") == "超 x"
    assert index_text("plain ascii, user_id=1") == "plain ascii, user_id=1"  # the ascii tokenizer cuts it alike
    assert index_text("ＧＩＴ：amd64 — ok") == "ｇｉｔ amd64 ok"


def test_query_terms_line_up_with_the_indexed_bigrams() -> None:
    assert fts_phrase("超时") == '"超时"'
    assert fts_phrase("连接超时") == '"连接 接超 超时"'
    assert fts_phrase("超时 error") == '"超时 时 error"'  # the run's last char sits before the next word
    assert fts_phrase("超") == '"超"*'  # one character may start a longer run
    assert fts_phrase("a 超") == '"a 超"*'
    assert fts_phrase('say "x"') == '"say x"'
    assert fts_phrase("git:AMD64") == '"git amd64"'


def _matches(message: str, term: str) -> bool:
    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE f USING fts5(body, content='', tokenize=\"ascii\")")
    db.execute("INSERT INTO f(rowid, body) VALUES (1, ?)", (index_text(message),))
    return bool(db.execute("SELECT rowid FROM f WHERE f MATCH ?", (fts_phrase(term),)).fetchall())


@pytest.mark.parametrize(
    ("message", "term", "found"),
    [
        ("请求超时，请稍后重试", "超时", True),
        ("连接超时 after 30s", "超时 after", True),
        ("超过时间限制", "超时", False),
        ("超过时间限制", "时间", True),
        ("超过时间限制", "间", True),
        ("超时间 error", "超时 error", False),  # 超时 is not directly followed by error
        ("超时间 error", "间 error", True),
        ("耗时5毫秒", "时5", True),
        ("数据库连接失败", "数据库连接", True),
        ("数据库连接失败", "库连", True),
        ("数据库连接失败", "据库连失", False),
        ("指定。版本控制", "定版本", False),  # a CJK term matches inside one run only
        ("指定。版本控制", "指定 版本", True),
        ("Timeout after 30s", "timeout", True),
        ("Timeout after 30s", "time", False),
        ("user_id=42", "user_id", True),
        ("user_id=42", "user", True),  # _ is not a letter or digit
        ("fetched git:amd64", "amd64", True),
        ("the archive's index", "archive", True),
        ("took 1,000 ms", "000", True),
        ("オフセット404", "404", True),
        ("オフセット404", "フセット404", True),
        ("オフセット404", "セット", True),
        ("オフセット404", "オフセット40", False),
    ],
)
def test_embedded_matching_follows_the_word_rule(message: str, term: str, found: bool) -> None:
    assert _matches(message, term) is found
    assert bool(match_spans(message, term)) is found  # the console marks what matched


# -- helpers ---------------------------------------------------------------------------------------


def test_rfc3339_with_nanoseconds_and_offsets() -> None:
    assert parse_rfc3339_ns("2026-11-22T10:00:00.123456789Z") == 1_795_341_600_123_456_789
    assert parse_rfc3339_ns("2026-11-22T18:00:00.5+08:00") == 1_795_341_600_500_000_000
    assert parse_rfc3339_ns("2026-11-22T10:00:00Z") == 1_795_341_600_000_000_000
    assert parse_rfc3339_ns("not a time") is None
    assert parse_rfc3339_ns("2026-13-40T10:00:00Z") is None


def test_ansi_sequences_are_stripped() -> None:
    assert strip_ansi("\x1b[1;31mERROR\x1b[0m done") == "ERROR done"
    assert strip_ansi("\x1b]8;;http://x\x07link\x1b]8;;\x07") == "link"
    assert strip_ansi("plain") == "plain"


def test_params_parse_lists_times_and_defaults() -> None:
    p = log_params(
        {"namespaces": "a, b,,a", "q": "超时", "start": "2026-11-22T00:00:00Z", "end": "1795400000", "from": "10"}
    )
    assert p.namespaces == ("a", "b")
    assert p.text == Term("超时")
    assert p.start == 1_795_305_600.0 and p.end == 1_795_400_000.0
    assert (p.sort, p.offset, p.size) == ("desc", 10, 50)
    with pytest.raises(InvalidInput) as err:
        log_params({"interval": "1.5s"})
    assert err.value.field == "interval"


def test_a_day_file_of_the_old_word_rule_is_reindexed_when_the_store_opens_it(tmp_path: Path) -> None:
    day = 1_795_219_200.0  # 2026-11-21
    lines = [LogRecord(time=day + i, namespace="big", pod="b", container="c", message=f"noise {i}") for i in range(10)]
    lines += [
        LogRecord(time=day + 20, namespace="ns", pod="p", container="c", message="fetched git:amd64"),
        LogRecord(time=day + 21, namespace="ns", pod="p", container="c", message="オフセット404"),
    ]
    store = EmbeddedLogStore(tmp_path)
    store.write(lines)
    store.close()
    # Make the file what an older hub left: unicode61 over the raw messages, user_version 0.
    (path,) = tmp_path.glob("logs-*.sqlite3")
    db = sqlite3.connect(path)
    db.execute("DROP TABLE logs_fts")
    db.execute(
        "CREATE VIRTUAL TABLE logs_fts USING fts5(body, tag, content='', "
        "tokenize=\"unicode61 remove_diacritics 0 tokenchars '_'\")"
    )
    catalog = sqlite3.connect(tmp_path / "catalog.sqlite3")
    ns_of = dict(catalog.execute("SELECT id, ns FROM sources"))
    for key, src, message in db.execute("SELECT id, src, message FROM logs").fetchall():
        db.execute("INSERT INTO logs_fts(rowid, body, tag) VALUES (?, ?, ?)", (key, message, f"n{ns_of[src]} s{src}"))
    db.execute("PRAGMA user_version = 0")
    db.commit()
    assert db.execute("SELECT count(*) FROM logs_fts WHERE logs_fts MATCH 'body : 404'").fetchone() == (
        0,
    )  # one word there
    db.close()

    reopened = EmbeddedLogStore(tmp_path)
    try:
        for q, expected in (("amd64", ["fetched git:amd64"]), ("404", ["オフセット404"]), ("noise", None)):
            for visibility in (None, {"ns": 0.0}):  # the second asks through the tag tokens (1 line in 6)
                found = [i.message for i in reopened.search(LogQuery(visibility, text=parse_keywords(q))).items]
                want = (
                    expected
                    if expected is not None
                    else ([] if visibility else [f"noise {i}" for i in range(9, -1, -1)])
                )
                assert found == want, (q, visibility)
    finally:
        reopened.close()
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone() == (WORDS_VERSION,)
