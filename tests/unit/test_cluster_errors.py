"""Kubernetes failures become clear hub errors; the connection is chosen as the settings promise."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.collectors.k8s_errors import connection_error, error_from_status
from hub.collectors.kubernetes import choose_connection, connect
from hub.errors import BackendUnavailable, ConfigError, Conflict, Forbidden, InvalidInput, NotFound, Unprocessable
from hub.settings import KubernetesSettings

pytestmark = pytest.mark.unit


def status(code: int, reason: str, message: str, causes: list[dict[str, str]] | None = None) -> dict:
    body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": reason}
    body["message"] = message
    if causes is not None:
        body["details"] = {"causes": causes}
    return body


def test_not_found_names_the_object() -> None:
    err = error_from_status(
        404,
        status(404, "NotFound", 'deployments.apps "web" not found'),
        verb="patch",
        resource="deployments",
        namespace="team-a",
        name="web",
    )
    assert isinstance(err, NotFound) and err.status == 404
    assert err.message == "deployment team-a/web was not found"


def test_a_conflict_tells_the_user_to_reload_and_retry() -> None:
    err = error_from_status(
        409,
        status(409, "Conflict", "the object has been modified; please apply your changes to the latest version"),
        verb="patch",
        resource="deployments",
        namespace="team-a",
        name="web",
    )
    assert isinstance(err, Conflict) and err.status == 409
    assert "retry" in err.message and "team-a/web" in err.message


def test_already_exists_is_a_conflict_saying_so() -> None:
    err = error_from_status(
        409,
        status(409, "AlreadyExists", 'namespaces "a" already exists'),
        verb="create",
        resource="namespaces",
        name="a",
    )
    assert isinstance(err, Conflict) and err.message == "namespace a already exists"


def test_forbidden_names_the_verb_and_the_resource() -> None:
    body = status(
        403,
        "Forbidden",
        'deployments.apps "web" is forbidden: User "system:serviceaccount:hub:hub" cannot patch resource "deployments"',
    )
    err = error_from_status(403, body, verb="patch", resource="deployments", namespace="team-a", name="web")
    assert isinstance(err, Forbidden) and err.status == 403
    assert "may not patch deployments in namespace team-a" in err.message


def test_invalid_names_the_request_field_behind_the_kubernetes_field() -> None:
    body = status(
        422,
        "Invalid",
        'Deployment.apps "web" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0',
        causes=[
            {"reason": "FieldValueInvalid", "message": "Invalid value: -1: must be >= 0", "field": "spec.replicas"}
        ],
    )
    err = error_from_status(
        422, body, verb="patch", resource="deployments", namespace="a", name="web", fields={"spec.replicas": "replicas"}
    )
    assert isinstance(err, Unprocessable) and err.status == 422
    assert err.field == "replicas"
    assert "spec.replicas" in err.message and "must be >= 0" in err.message


def test_an_invalid_field_without_a_mapping_keeps_the_kubernetes_path() -> None:
    body = status(
        422,
        "Invalid",
        "invalid",
        causes=[{"field": "spec.template.spec.containers[0].image", "message": "Required value"}],
    )
    err = error_from_status(422, body, verb="patch", resource="deployments", namespace="a", name="web")
    assert err.field == "spec.template.spec.containers[0].image"


def test_bad_request_is_a_400_with_the_servers_reason() -> None:
    err = error_from_status(
        400,
        status(400, "BadRequest", 'container "nginx" in pod "web-1" is waiting to start'),
        verb="get",
        resource="pods/log",
        namespace="a",
        name="web-1",
    )
    assert isinstance(err, InvalidInput) and "waiting to start" in err.message


@pytest.mark.parametrize("code", [401, 429, 500, 503, 504])
def test_server_side_failures_are_503_naming_the_api_server(code: int) -> None:
    err = error_from_status(code, b"upstream connect error", verb="list", resource="pods")
    assert isinstance(err, BackendUnavailable) and err.status == 503
    assert err.backend == "kubernetes API server"
    assert err.to_dict()["backend"] == "kubernetes API server"


def test_a_refused_connection_is_a_503_naming_the_api_server() -> None:
    err = connection_error(ConnectionRefusedError(111, "Connection refused"), verb="patch", resource="deployments")
    assert err.status == 503 and err.backend == "kubernetes API server"
    assert "Connection refused" in err.message and "patch deployments" in err.message


def test_a_non_json_body_does_not_break_the_mapping() -> None:
    err = error_from_status(404, b"<html>not here</html>", verb="get", resource="nodes", name="n1")
    assert isinstance(err, NotFound) and err.message == "node n1 was not found"


# -- connection choice ---------------------------------------------------------------------------


def test_none_disables_the_cluster(tmp_path: Path) -> None:
    conn = choose_connection(KubernetesSettings(kubeconfig="none"), token_path=tmp_path / "token")
    assert conn.mode == "disabled"
    assert connect(KubernetesSettings(kubeconfig="none")) is None


def test_an_explicit_kubeconfig_wins_over_the_service_account(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("t")
    conn = choose_connection(
        KubernetesSettings(kubeconfig=str(tmp_path / "kc.yaml"), context="ctx"),
        token_path=token,
        default_kubeconfig=tmp_path / "missing",
    )
    assert (conn.mode, conn.path, conn.context) == ("kubeconfig", tmp_path / "kc.yaml", "ctx")


def test_empty_setting_prefers_the_pods_service_account(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("t")
    default = tmp_path / "config"
    default.write_text("apiVersion: v1\n")
    conn = choose_connection(KubernetesSettings(), token_path=token, default_kubeconfig=default)
    assert conn.mode == "in-cluster"


def test_empty_setting_falls_back_to_the_users_kubeconfig_then_to_no_cluster(tmp_path: Path) -> None:
    default = tmp_path / "config"
    conn = choose_connection(KubernetesSettings(), token_path=tmp_path / "none", default_kubeconfig=default)
    assert conn.mode == "absent"
    default.write_text("apiVersion: v1\n")
    conn = choose_connection(KubernetesSettings(), token_path=tmp_path / "none", default_kubeconfig=default)
    assert (conn.mode, conn.path) == ("kubeconfig", default)


def test_the_service_account_directory_is_a_setting_read_by_the_in_cluster_loader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tests run the hub as a service account outside a pod: token and CA elsewhere than /var/run."""
    (tmp_path / "token").write_text("sa-token-1")
    (tmp_path / "ca.crt").write_text("not parsed until a request is made")
    settings = KubernetesSettings(serviceaccount_dir=str(tmp_path))
    assert choose_connection(settings, default_kubeconfig=tmp_path / "absent").mode == "in-cluster"
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "6443")
    api = connect(settings)
    assert api is not None and api.host == "https://127.0.0.1:6443"
    cfg = api._client.configuration
    assert cfg.auth_settings()["BearerToken"]["value"].lower() == "bearer sa-token-1"
    assert cfg.ssl_ca_cert == str(tmp_path / "ca.crt")
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST")
    with pytest.raises(ConfigError) as err:  # a token without the service's address is no in-cluster setup
        connect(settings)
    assert err.value.setting == "KUBEHUB_KUBERNETES_KUBECONFIG"


def test_a_kubeconfig_path_that_does_not_exist_is_a_config_error_naming_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        connect(KubernetesSettings(kubeconfig=str(tmp_path / "nope.yaml")))
    assert err.value.setting == "KUBEHUB_KUBERNETES_KUBECONFIG"


def test_a_kubeconfig_without_the_asked_context_is_a_config_error(tmp_path: Path) -> None:
    kc = tmp_path / "kc.yaml"
    kc.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: a\n"
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: a, context: {cluster: c, user: u}}]\n"
    )
    assert connect(KubernetesSettings(kubeconfig=str(kc))) is not None
    with pytest.raises(ConfigError) as err:
        connect(KubernetesSettings(kubeconfig=str(kc), context="missing"))
    assert "missing" in err.value.message
