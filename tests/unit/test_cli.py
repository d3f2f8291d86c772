from __future__ import annotations

import pytest

from hub.cli import main

pytestmark = pytest.mark.unit


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    import hub

    assert main(["version"]) == 0
    assert capsys.readouterr().out.strip() == f"kubehub {hub.__version__}"


@pytest.mark.parametrize("argv", [["--help"], ["serve", "--help"], ["rules", "check", "--help"], ["sandbox", "--help"]])
def test_help_is_available_everywhere(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(argv)
    assert done.value.code == 0
    assert "usage: kubehub" in capsys.readouterr().out


def test_settings_command_prints_every_environment_variable(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["settings"]) == 0
    out = capsys.readouterr().out
    for var in ("KUBEHUB_DATA_DIR", "KUBEHUB_PROMETHEUS_URL", "KUBEHUB_SMTP_HOST", "KUBEHUB_LOGS_BACKEND"):
        assert var in out


def test_a_config_error_is_one_line_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KUBEHUB_HTTP_PORT", "not-a-port")
    assert main(["serve"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("kubehub: KUBEHUB_HTTP_PORT")
    assert "Traceback" not in err and len(err.splitlines()) == 1
