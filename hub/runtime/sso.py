"""Builds single sign-on (OpenID Connect) into the hub when ``oidc.issuer_url`` is set.

Nothing is fetched here: the provider's discovery document and keys are fetched at the first
sign-in (and /readyz asks), so a provider that is down shows as a 503 naming it, and local
(break-glass) logins keep working.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hub.tenancy.oidc import OidcClient, OidcConfig

if TYPE_CHECKING:
    from hub.runtime import Hub

CALLBACK_PATH = "/login/oidc/callback"


def build(hub: Hub) -> None:
    s = hub.settings.oidc
    if not s.issuer_url:
        hub.oidc = None
        return
    config = OidcConfig(
        issuer=s.issuer_url,
        client_id=s.client_id,
        client_secret=s.client_secret,
        redirect_url=s.redirect_url or hub.settings.public_url.rstrip("/") + CALLBACK_PATH,
        scopes=s.scopes,
        ca_file=s.ca_file,
        timeout=s.timeout,
        username_claim=s.username_claim,
        groups_claim=s.groups_claim,
        leeway=s.leeway,
    )
    hub.oidc = OidcClient(config, clock=hub.clock)
