"""OpenID Connect relying party: the one module that speaks the protocol (Authlib).

Why Authlib: it is the well-kept Python implementation of OAuth 2 and OpenID Connect for both
sides; its requests client builds the authorization URL with PKCE (S256) and exchanges the
code, and its ``CodeIDToken`` checks the ID token's claims. Signatures are checked with
``joserfc``, the JOSE library Authlib itself depends on and uses for this since Authlib 1.6
(``authlib.jose`` is deprecated in its favour); both are imported here only.

The flow (authorization code + PKCE, OpenID Connect Core 1.0 §3.1):

1. :meth:`OidcClient.begin` makes a fresh ``state`` (binds the answer to this browser: a wrong
   one is refused before anything else), ``nonce`` (binds the ID token to this login: a token
   replayed from another login fails) and PKCE ``code_verifier`` (a stolen code is useless
   without it). The web layer keeps the three in the signed session cookie until the callback.
2. :meth:`OidcClient.finish` exchanges the code at the token endpoint (client secret + the
   verifier), then validates the ID token: signature against the provider's JWKS (an unknown
   ``kid`` makes it fetch the JWKS again once: the provider rotated its keys), ``iss`` equal to
   the configured issuer, ``aud`` holding our client id (and ``azp`` when there are several),
   ``exp``/``iat`` against the hub's clock (``leeway`` seconds of skew), ``nonce``, and
   ``at_hash`` when present. Groups come from the ID token, or from userinfo when the ID
   token lacks the claim.
3. :meth:`OidcClient.logout_url` is the provider's RP-initiated logout, when it offers one.

Failures: the provider not answering (discovery, JWKS, token endpoint) is
:class:`~hub.errors.BackendUnavailable` naming ``oidc provider`` (503); anything the provider
or the token says that we do not accept is :class:`SsoRefused` (401) with the reason, which the
hub logs and audits but never shows beyond one neutral sentence.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session, OAuthError
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

from hub.errors import BackendUnavailable, Unauthenticated
from hub.timeutil import Clock

log = logging.getLogger("kubehub.oidc")

BACKEND = "oidc provider"
METADATA_SECONDS = 3600.0  # discovery document kept this long (keys are refetched on an unknown kid)
ALLOWED_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")


class SsoRefused(Unauthenticated):
    """The provider's answer or token is not acceptable; ``reason`` is for the log and audit."""

    def __init__(self, reason: str) -> None:
        super().__init__("single sign-on failed; try again or ask your administrator")
        self.reason = reason


@dataclass(frozen=True)
class OidcConfig:
    issuer: str
    client_id: str
    client_secret: str
    redirect_url: str
    scopes: str = "openid profile email groups"
    ca_file: str = ""
    timeout: float = 10.0
    username_claim: str = "preferred_username"
    groups_claim: str = "groups"
    leeway: float = 60.0

    @property
    def verify(self) -> str | bool:
        return self.ca_file or True


@dataclass(frozen=True)
class AuthRequest:
    """Where to send the browser, and what the callback must find again in its session."""

    url: str
    state: str
    nonce: str
    code_verifier: str


@dataclass(frozen=True)
class OidcIdentity:
    """Who the provider vouched for, after every check passed."""

    subject: str
    username: str
    display_name: str
    email: str
    groups: tuple[str, ...]
    id_token: str
    expires_at: float
    key_id: str


class OidcClient:
    """One configured provider. Thread-safe: the caches are replaced whole under a lock."""

    def __init__(self, config: OidcConfig, *, clock: Clock) -> None:
        self.config = config
        self.clock = clock
        self._lock = threading.Lock()
        self._metadata: dict[str, Any] | None = None
        self._metadata_at = 0.0
        self._jwks: dict[str, Any] | None = None
        self.jwks_fetches = 0  # how often the keys were fetched (tests see a rotation refetch)

    # -- talking to the provider ------------------------------------------------------------------
    def _get(self, url: str, what: str) -> dict[str, Any]:
        try:
            resp = requests.get(url, timeout=self.config.timeout, verify=self.config.verify)
        except requests.exceptions.SSLError as exc:
            raise BackendUnavailable(BACKEND, f"TLS error fetching the {what}: {_first_line(exc)}") from exc
        except requests.exceptions.RequestException as exc:
            raise BackendUnavailable(BACKEND, f"cannot fetch the {what} ({type(exc).__name__})") from exc
        if resp.status_code != 200:
            raise BackendUnavailable(BACKEND, f"the {what} answered HTTP {resp.status_code}")
        try:
            body = resp.json()
        except ValueError as exc:
            raise BackendUnavailable(BACKEND, f"the {what} is not JSON") from exc
        if not isinstance(body, dict):
            raise BackendUnavailable(BACKEND, f"the {what} is not a JSON object")
        return body

    def metadata(self, *, refresh: bool = False) -> dict[str, Any]:
        """The provider's discovery document (cached); its issuer must be the configured one."""
        now = self.clock.now()
        with self._lock:
            if not refresh and self._metadata is not None and now - self._metadata_at < METADATA_SECONDS:
                return self._metadata
        url = self.config.issuer.rstrip("/") + "/.well-known/openid-configuration"
        doc = self._get(url, "discovery document")
        if doc.get("issuer") != self.config.issuer:
            # OpenID Connect Discovery §4.3: a mismatch means a misconfiguration or an impostor.
            raise BackendUnavailable(BACKEND, f"the discovery document names issuer {doc.get('issuer')!r}")
        for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not isinstance(doc.get(key), str):
                raise BackendUnavailable(BACKEND, f"the discovery document has no {key}")
        with self._lock:
            self._metadata, self._metadata_at = doc, now
        return doc

    def _keys(self, *, refresh: bool = False) -> KeySet:
        with self._lock:
            cached = self._jwks
        if cached is None or refresh:
            cached = self._get(self.metadata()["jwks_uri"], "key set (JWKS)")
            with self._lock:
                self._jwks = cached
                self.jwks_fetches += 1
        try:
            return KeySet.import_key_set(cached)  # type: ignore[arg-type]
        except (JoseError, ValueError, KeyError, TypeError) as exc:
            raise BackendUnavailable(BACKEND, f"the key set cannot be read ({type(exc).__name__})") from exc

    def probe(self) -> str:
        """/readyz: the discovery document answers (fetched afresh)."""
        return f"issuer {self.metadata(refresh=True)['issuer']}"

    def _session(self) -> OAuth2Session:
        return OAuth2Session(
            self.config.client_id,
            self.config.client_secret,
            token_endpoint_auth_method="client_secret_basic",
            scope=self.config.scopes,
            redirect_uri=self.config.redirect_url,
            code_challenge_method="S256",
        )

    # -- the flow ---------------------------------------------------------------------------------
    def begin(self) -> AuthRequest:
        """A new authorization request (fresh state, nonce and PKCE verifier).

        The discovery document is fetched afresh: a provider that is down is then a 503 here,
        before the browser is sent to a page that would not load.
        """
        endpoint = self.metadata(refresh=True)["authorization_endpoint"]
        state, nonce, verifier = generate_token(32), generate_token(32), generate_token(64)
        with self._session() as session:
            url, _ = session.create_authorization_url(endpoint, state=state, nonce=nonce, code_verifier=verifier)
        return AuthRequest(url=url, state=state, nonce=nonce, code_verifier=verifier)

    def finish(self, *, code: str, code_verifier: str, nonce: str) -> OidcIdentity:
        """Exchange ``code`` and validate what comes back; raises SsoRefused or BackendUnavailable."""
        meta = self.metadata()
        with self._session() as session:
            try:
                token = session.fetch_token(
                    meta["token_endpoint"],
                    grant_type="authorization_code",
                    code=code,
                    code_verifier=code_verifier,
                    timeout=self.config.timeout,
                    verify=self.config.verify,
                )
            except OAuthError as exc:
                # invalid_grant: a code used before, expired, or not issued with this verifier.
                raise SsoRefused(f"the token endpoint refused the code ({exc.error})") from exc
            except requests.exceptions.RequestException as exc:
                raise BackendUnavailable(BACKEND, f"the token endpoint did not answer ({type(exc).__name__})") from exc
            except ValueError as exc:  # a body that is not a token response
                raise BackendUnavailable(BACKEND, "the token endpoint's answer is not a token response") from exc
        raw = token.get("id_token")
        if not isinstance(raw, str):
            raise SsoRefused("the token response has no id_token (is the openid scope configured?)")
        claims, kid = self.validate_id_token(raw, nonce=nonce, access_token=token.get("access_token"))
        # A provider that follows OIDC Core §5.4 strictly puts the profile, email and groups claims
        # only in userinfo when it also issues an access token: ask userinfo for what is missing.
        wanted = (self.config.username_claim, self.config.groups_claim)
        info: dict[str, Any] = dict(claims)
        if any(w not in claims for w in wanted) and meta.get("userinfo_endpoint") and token.get("access_token"):
            extra = self._userinfo(meta["userinfo_endpoint"], str(token["access_token"]), claims["sub"])
            info = {**extra, **claims}  # the signed ID token wins where both say something
        username = info.get(self.config.username_claim)
        if not isinstance(username, str) or not username.strip():
            raise SsoRefused(f"neither the ID token nor userinfo has a {self.config.username_claim} claim")
        return OidcIdentity(
            subject=str(claims["sub"]),
            username=username.strip(),
            display_name=str(info.get("name") or ""),
            email=str(info.get("email") or ""),
            groups=_groups(info.get(self.config.groups_claim)),
            id_token=raw,
            expires_at=float(claims["exp"]),
            key_id=kid,
        )

    def validate_id_token(self, raw: str, *, nonce: str, access_token: object = None) -> tuple[Mapping[str, Any], str]:
        """The ID token's claims and key id, after every check; raises SsoRefused."""
        meta = self.metadata()
        offered = meta.get("id_token_signing_alg_values_supported") or ["RS256"]
        algorithms = [a for a in offered if a in ALLOWED_ALGORITHMS]  # never "none", never HMAC
        try:
            try:
                decoded = jwt.decode(raw, self._keys(), algorithms=algorithms)
            except InvalidKeyIdError:
                log.info("ID token signed with a key id not in the cached JWKS; fetching the keys again")
                decoded = jwt.decode(raw, self._keys(refresh=True), algorithms=algorithms)
        except JoseError as exc:
            raise SsoRefused(f"the ID token's signature does not verify ({exc.error})") from exc
        except ValueError as exc:
            raise SsoRefused(f"the ID token cannot be decoded ({_first_line(exc)})") from exc
        params: dict[str, Any] = {"nonce": nonce, "client_id": self.config.client_id}
        if isinstance(access_token, str):
            params["access_token"] = access_token
        options = {
            "iss": {"essential": True, "values": [self.config.issuer]},
            "aud": {"essential": True, "values": [self.config.client_id]},
        }
        claims = CodeIDToken(decoded.claims, decoded.header, options, params)
        try:
            claims.validate(now=int(self.clock.now()), leeway=int(self.config.leeway))
        except JoseError as exc:
            raise SsoRefused(f"the ID token is not valid: {exc.error} {exc.description or ''}".strip()) from exc
        if not claims.get("sub"):
            raise SsoRefused("the ID token has no subject")
        return dict(claims), str(decoded.header.get("kid") or "")

    def _userinfo(self, url: str, access_token: str, subject: str) -> Mapping[str, Any]:
        try:
            resp = requests.get(
                url,
                headers={"Authorization": f"Bearer {access_token}"},
                timeout=self.config.timeout,
                verify=self.config.verify,
            )
        except requests.exceptions.RequestException as exc:
            raise BackendUnavailable(BACKEND, f"userinfo did not answer ({type(exc).__name__})") from exc
        if resp.status_code != 200:
            raise SsoRefused(f"userinfo answered HTTP {resp.status_code}")
        body = resp.json()
        if not isinstance(body, dict) or body.get("sub") != subject:
            raise SsoRefused("userinfo describes another subject")  # OIDC Core §5.3.2
        return body

    def logout_url(self, *, id_token: str, post_logout_redirect: str) -> str | None:
        """The provider's end-session URL for this login, or None when it has none (or is down:
        the hub's own session has ended either way)."""
        try:
            endpoint = self.metadata().get("end_session_endpoint")
        except BackendUnavailable:
            return None
        if not isinstance(endpoint, str):
            return None
        from authlib.common.urls import add_params_to_uri

        params = [
            ("id_token_hint", id_token),
            ("post_logout_redirect_uri", post_logout_redirect),
            ("client_id", self.config.client_id),
        ]
        return str(add_params_to_uri(endpoint, params))


def _groups(value: object) -> tuple[str, ...]:
    """A groups claim as a tuple of names: a list of strings, or one string; anything else: none."""
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return tuple(v for v in value if isinstance(v, str) and v)
    return ()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
