from __future__ import annotations

from pathlib import Path

import pytest

from hub.tenancy.roles import permission_table_markdown

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


def test_readme_starts_with_exactly_two_setup_commands() -> None:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = text.split("```sh\n", 1)[1].split("```", 1)[0]
    commands = [line for line in block.splitlines() if line.strip()]
    assert [c.split()[0:2] for c in commands] == [["make", "sandbox"], ["make", "test"]]


def test_ci_runs_the_readme_test_command() -> None:
    assert "make test" in (REPO / ".ci" / "run").read_text(encoding="utf-8")


def test_readme_role_table_matches_the_code() -> None:
    assert permission_table_markdown() in (REPO / "README.md").read_text(encoding="utf-8")
