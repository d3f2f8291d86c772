"""The one call every cluster-side service needs from the Kubernetes adapter, as a Protocol.

Apply, rollback through ControllerRevisions, quotas and the cluster service each talk to the API
server through :meth:`hub.collectors.kubernetes.KubeApi.request` only; they name this Protocol
instead of the adapter so their tests can pass a recording fake and the adapter stays the one
module importing the Kubernetes client.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol


class KubeRequests(Protocol):
    """``KubeApi.request``: one call; the decoded JSON answer (text when ``raw``), or a HubError."""

    def request(
        self,
        method: str,
        path: str,
        *,
        verb: str,
        resource: str,
        namespace: str | None = None,
        name: str | None = None,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str | None = None,
        accept: str = "application/json",
        fields: Mapping[str, str] | None = None,
        raw: bool = False,
    ) -> Any: ...
