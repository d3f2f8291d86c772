"""``kubehub users create-admin``: password from a prompt (twice) or an environment variable."""

from __future__ import annotations

from pathlib import Path

import pytest

import hub.runtime.tenancy as runtime_tenancy
from hub.cli import main
from hub.tenancy.credentials import PasswordHashing
from hub.tenancy.service import TenancyService
from tests.conftest import open_test_store
from tests.unit.conftest_tenancy import FAST_AUTH

pytestmark = pytest.mark.unit

GOOD = "Launch-code-4711"


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KUBEHUB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("KUBEHUB_AUTH_PASSWORD_HASH_MEMORY_KIB", str(FAST_AUTH["password_hash_memory_kib"]))
    monkeypatch.setenv("KUBEHUB_AUTH_PASSWORD_HASH_TIME_COST", "1")
    monkeypatch.delenv("KUBEHUB_CONFIG", raising=False)
    return tmp_path / "data"


def _can_log_in(data_dir: Path, name: str, password: str) -> bool:
    db = open_test_store(data_dir / "state.sqlite3")
    try:
        svc = TenancyService(db, hashing=PasswordHashing(memory_kib=1024, time_cost=1))
        user = svc.login(name, password)
        return user.platform_role == "admin"
    finally:
        db.close()


def _prompt(monkeypatch: pytest.MonkeyPatch, answers: list[str], *, tty: bool = True) -> list[str]:
    asked: list[str] = []

    def fake_getpass(prompt: str = "") -> str:
        asked.append(prompt)
        return answers.pop(0)

    monkeypatch.setattr(runtime_tenancy.getpass, "getpass", fake_getpass)
    monkeypatch.setattr(runtime_tenancy.sys.stdin, "isatty", lambda: tty)
    return asked


def test_create_admin_from_an_environment_variable(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FIRST_ADMIN_PW", GOOD)
    assert main(["users", "create-admin", "root", "--password-env", "FIRST_ADMIN_PW"]) == 0
    out = capsys.readouterr()
    assert out.out.strip() == "created platform admin root" and GOOD not in out.out + out.err
    assert _can_log_in(data_dir, "root", GOOD)


def test_create_admin_prompts_twice(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    asked = _prompt(monkeypatch, [GOOD, GOOD])
    assert main(["users", "create-admin", "root"]) == 0
    assert len(asked) == 2
    assert _can_log_in(data_dir, "root", GOOD)


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        ([GOOD, GOOD + "x"], "the two passwords differ"),
        (["", ""], "a password is required"),
        (["short", "short"], "at least 10 characters"),
        (["password123", "password123"], "too common"),
    ],
)
def test_create_admin_refuses_mismatched_empty_or_weak_passwords(
    data_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    answers: list[str],
    message: str,
) -> None:
    _prompt(monkeypatch, answers)
    assert main(["users", "create-admin", "root"]) == 1
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_create_admin_without_a_terminal_or_variable_says_how(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _prompt(monkeypatch, [], tty=False)
    assert main(["users", "create-admin", "root"]) == 1
    assert "--password-env" in capsys.readouterr().err


def test_create_admin_with_an_unset_variable_fails(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    assert main(["users", "create-admin", "root", "--password-env", "NOT_SET_ANYWHERE"]) == 1
    assert "NOT_SET_ANYWHERE" in capsys.readouterr().err


def test_create_admin_refuses_an_existing_user_and_a_bad_name(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PW", GOOD)
    assert main(["users", "create-admin", "root", "--password-env", "PW"]) == 0
    assert main(["users", "create-admin", "root", "--password-env", "PW"]) == 1
    assert "already exists" in capsys.readouterr().err
    assert main(["users", "create-admin", "Not Valid", "--password-env", "PW"]) == 1
    assert "user names are" in capsys.readouterr().err
