from __future__ import annotations

from pathlib import Path

import pytest

from hub.errors import ConfigError
from hub.settings import Settings, load_settings, settings_markdown

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


def test_defaults_need_no_external_service() -> None:
    s = load_settings({})
    assert s.logs.backend == "embedded"
    assert s.prometheus.url == ""
    assert s.smtp.host == ""
    assert s.state_db.name == "state.sqlite3"


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    cfg = tmp_path / "kubehub.yaml"
    cfg.write_text("http:\n  port: 9001\nprometheus:\n  url: http://file:9090\n")
    s = load_settings({"KUBEHUB_CONFIG": str(cfg), "KUBEHUB_HTTP_PORT": "9002"})
    assert s.http.port == 9002
    assert s.prometheus.url == "http://file:9090"


def test_a_bad_value_names_the_environment_variable() -> None:
    with pytest.raises(ConfigError) as err:
        load_settings({"KUBEHUB_HTTP_PORT": "eighty"})
    assert "KUBEHUB_HTTP_PORT" in str(err.value)


def test_a_typo_in_the_file_is_an_error_not_a_silent_default(tmp_path: Path) -> None:
    cfg = tmp_path / "kubehub.yaml"
    cfg.write_text("prometheus:\n  ulr: http://x\n")
    with pytest.raises(ConfigError) as err:
        load_settings({"KUBEHUB_CONFIG": str(cfg)})
    assert "prometheus.ulr" in str(err.value)


def test_elasticsearch_backend_requires_its_url() -> None:
    with pytest.raises(ConfigError) as err:
        load_settings({"KUBEHUB_LOGS_BACKEND": "elasticsearch"})
    assert "KUBEHUB_ELASTICSEARCH_URL" in str(err.value)


def test_booleans_accept_the_usual_spellings() -> None:
    assert load_settings({"KUBEHUB_LOGS_SHIP": "no"}).logs.ship is False
    assert load_settings({"KUBEHUB_LOGS_SHIP": "On"}).logs.ship is True
    with pytest.raises(ConfigError):
        load_settings({"KUBEHUB_LOGS_SHIP": "maybe"})


def test_replace_changes_one_group_field_only() -> None:
    s = Settings().replace(http={"port": 1234})
    assert s.http.port == 1234
    assert s.http.host == Settings().http.host


def test_readme_settings_table_matches_the_code() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert settings_markdown() in readme, "regenerate the README table with `kubehub settings`"
