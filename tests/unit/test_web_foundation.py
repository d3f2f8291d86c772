from __future__ import annotations

import pytest
from flask import Flask
from openapi_spec_validator import validate

from web.access import public

pytestmark = pytest.mark.unit


def test_healthz_answers_ok(client) -> None:  # type: ignore[no-untyped-def]
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.get_json() == {"status": "ok"}


def test_readyz_lists_the_state_backend(client) -> None:  # type: ignore[no-untyped-def]
    r = client.get("/readyz")
    body = r.get_json()
    assert r.status_code == 200
    names = {b["name"]: b for b in body["backends"]}
    assert names["state"]["state"] == "ok"


def test_readyz_serving_stays_ready_through_a_metrics_outage_and_not_a_state_store_one(
    settings, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """The load balancer's probe follows the state store only; /readyz follows every backend."""
    from web import create_app

    down = settings.replace(prometheus={"url": "http://127.0.0.1:9/"})
    app = create_app(down, testing=True)
    try:
        client = app.test_client()
        full = client.get("/readyz")
        assert full.status_code == 503
        assert {b["name"]: b["state"] for b in full.get_json()["backends"]}["prometheus"] == "unreachable"
        serving = client.get("/readyz/serving")
        assert serving.status_code == 200
        body = serving.get_json()
        assert body["ready"] is True
        assert [b["name"] for b in body["backends"]] == ["state"]
        assert "replica" in body["leader"]

        hub = app.extensions["kubehub"]

        def refused(*_args: object, **_kwargs: object) -> None:
            raise OSError("connection refused")

        monkeypatch.setattr(hub.db, "query_one", refused)
        gone = client.get("/readyz/serving")
        assert gone.status_code == 503
        assert gone.get_json()["backends"][0] == {"name": "state", "state": "unreachable"}
    finally:
        app.extensions["kubehub"].close()


def test_metrics_are_in_exposition_format(client) -> None:  # type: ignore[no-untyped-def]
    client.get("/healthz")
    r = client.get("/metrics")
    assert r.status_code == 200
    assert r.content_type.startswith("text/plain")
    text = r.get_data(as_text=True)
    assert "# TYPE kubehub_http_requests_total counter" in text
    assert 'endpoint="ops.healthz"' in text


def test_openapi_is_valid_and_lists_every_api_route(app: Flask, client) -> None:  # type: ignore[no-untyped-def]
    spec = client.get("/api/v1/openapi.json").get_json()
    validate(spec)
    api_rules = {r.rule for r in app.url_map.iter_rules() if r.rule.startswith("/api/")}
    import re

    documented = {re.sub(r"\{(\w+)\}", r"<\1>", p) for p in spec["paths"]}
    normalised = {re.sub(r"<(?:[a-z]+(?:\([^)]*\))?:)?(\w+)>", r"<\1>", r) for r in api_rules}
    assert normalised <= documented


def test_unknown_api_path_is_a_json_404(client) -> None:  # type: ignore[no-untyped-def]
    r = client.get("/api/v1/does-not-exist")
    assert r.status_code == 404
    assert "error" in r.get_json()


def test_an_unexpected_error_is_a_json_500_without_traceback(app: Flask, client) -> None:  # type: ignore[no-untyped-def]
    @app.get("/api/v1/_test_boom")
    @public
    def boom():  # type: ignore[no-untyped-def]
        raise ValueError("secret internals")

    r = client.get("/api/v1/_test_boom")
    assert r.status_code == 500
    body = r.get_data(as_text=True)
    assert "Traceback" not in body and "secret internals" not in body
    assert "reference" in r.get_json()["error"]


def test_a_route_without_a_permission_declaration_is_closed(app: Flask, client) -> None:  # type: ignore[no-untyped-def]
    @app.get("/api/v1/_test_undeclared")
    def undeclared():  # type: ignore[no-untyped-def]
        return {"leak": True}

    r = client.get("/api/v1/_test_undeclared")
    assert r.status_code == 403
    assert "leak" not in r.get_data(as_text=True)
