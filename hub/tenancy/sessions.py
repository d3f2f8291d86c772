"""Logins, console sessions and API tokens: a part of :class:`~hub.tenancy.service.TenancyService`
(a mixin; the service holds the store, settings and clock it uses)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

from hub.errors import InvalidInput, NotFound, RateLimited, Unauthenticated, Unprocessable
from hub.ratelimit import retry_after
from hub.settings import AuthSettings
from hub.store.tenancy import TenancyStore, TokenRecord, UserRecord
from hub.tenancy.credentials import (
    USERNAME_RE,
    PasswordHashing,
    digest,
    new_session_id,
    new_token,
    token_hint,
)
from hub.tenancy.external import AccountRefused, ExternalUser, PasswordDirectory
from hub.tenancy.scope import Principal
from hub.timeutil import Clock

if TYPE_CHECKING:
    pass

log = logging.getLogger("kubehub.tenancy")


# Longest lifetime a token may be given: longer-lived automation should re-issue on purpose.
MAX_TOKEN_SECONDS = 366 * 86400.0
# Revoked and expired tokens stay listed this long (so their owners see what happened), then go.
_TOKEN_AFTERLIFE = 30 * 86400.0


class LoginThrottled(RateLimited):
    """Too many failed logins for the user name or from the client address (429).

    The message is the same whether or not the user exists. One of the hub's rate limits
    (:mod:`hub.ratelimit`): same window rule, same 429 with ``Retry-After``.
    """

    def __init__(self, retry_after: float) -> None:
        seconds = RateLimited.seconds(retry_after)
        super().__init__(
            f"too many failed logins for this user name or from this address; try again in {seconds} seconds",
            retry_after=retry_after,
        )


@dataclass(frozen=True)
class IssuedToken:
    """A freshly made token: the only time its clear text exists outside the caller."""

    id: int
    token: str
    name: str
    expires_at: float


class SessionsAndTokens:
    """Logins (with the throttle), console sessions and API tokens of the tenancy service."""

    if TYPE_CHECKING:  # provided by TenancyService (hub/tenancy/service.py)
        _dummy_hash: str | None
        directory: PasswordDirectory | None

        def provision(self, source: str, ext: ExternalUser, *, actor: str | None = None) -> UserRecord: ...

        def end_external_access(self, user: UserRecord, reason: str) -> None: ...

        def audit(
            self, actor: str, action: str, target: str, result: str, detail: Mapping[str, Any] | None = None
        ) -> int: ...

        auth: AuthSettings
        clock: Clock
        hashing: PasswordHashing
        store: TenancyStore

    # ===================================================================== login
    def login(self, username: object, password: object, *, client: str = "") -> UserRecord:
        """Check a user name and password; raises Unauthenticated or LoginThrottled.

        Throttling counts failures per user name and per client address over the login window
        and is checked before the password, so a locked name stays locked even for the right
        password. Unknown and disabled users fail exactly like a wrong password (same message,
        and an argon2 verification against a dummy hash so the time taken matches too).
        """
        if not isinstance(username, str) or not username.strip():
            raise InvalidInput("username is required", field="username")
        if not isinstance(password, str) or not password:
            raise InvalidInput("password is required", field="password")
        name = username.strip().lower()
        now = self.clock.now()
        keys = [digest("user:" + name), digest("addr:" + (client or "?"))]
        self._check_throttle(keys, now)
        user = self.store.user(name) if USERNAME_RE.match(name) else None
        directory = self.directory
        if directory is not None and USERNAME_RE.match(name) and (user is None or user.source == directory.source):
            # Not a local account: the directory decides (a local one never asks it, so
            # break-glass logins work while the directory is down).
            return self._directory_login(directory, name, password, user, keys, now, client)
        if user is None or user.disabled or user.source != "local":
            self.hashing.verify(self._dummy(), password)
            self._failed_login(keys, now, None, client)
        if not self.hashing.verify(user.password_hash, password):
            self._failed_login(keys, now, user.name, client)
        self.store.clear_failures(keys[0])
        changes: dict[str, Any] = {"last_login_at": now}
        if self.hashing.needs_rehash(user.password_hash):
            changes["password_hash"] = self.hashing.hash(password)
        self.store.update_user(name, now=now, **changes)
        return user

    def _directory_login(
        self,
        directory: PasswordDirectory,
        name: str,
        password: str,
        user: UserRecord | None,
        keys: list[str],
        now: float,
        client: str,
    ) -> UserRecord:
        """Bind-and-search against the directory, then provision and update the user.

        A directory that does not answer raises BackendUnavailable (503 naming it) and counts
        no failure; an account the directory refuses (gone, disabled) also loses its sessions
        and tokens here.
        """
        if user is not None and user.disabled:  # disabled by a kubehub admin: the directory is not asked
            self._failed_login(keys, now, user.name, client)
        try:
            found = directory.authenticate(name, password)
        except AccountRefused as exc:
            if user is not None:
                self.end_external_access(user, exc.reason)
            self._failed_login(keys, now, user.name if user else None, client)
        except Unauthenticated:
            self._failed_login(keys, now, user.name if user else None, client)
        record = self.provision(directory.source, found)
        if record.disabled:
            self._failed_login(keys, now, record.name, client)
        self.store.clear_failures(keys[0])
        self.store.update_user(record.name, now=now, last_login_at=now)
        return record

    def _failed_login(self, keys: list[str], now: float, username: str | None, client: str) -> NoReturn:
        for key in keys:
            self.store.record_failure(key, now)
        log.info("failed login for %s from %s", username or "an unknown user name", client or "?")
        self.audit(username or "(unknown user)", "auth.login", "session", "failed", {"client": client})
        raise Unauthenticated("invalid user name or password")

    def _check_throttle(self, keys: list[str], now: float) -> None:
        window = self.auth.login_window
        self.store.purge_failures(now - window)
        for key in keys:
            failures = self.store.failures_since(key, now - window)
            # Locked until enough of the counted failures have aged out of the window.
            wait = retry_after(failures, self.auth.login_attempts, window, now)
            if wait is not None:
                log.warning("login throttled: %d failures within %.0f s", len(failures), window)
                raise LoginThrottled(wait)

    def _dummy(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = self.hashing.hash(new_session_id())
        return self._dummy_hash

    # ===================================================================== sessions
    def start_session(self, username: str, *, client: str = "") -> str:
        """A new console session for ``username``; returns the session id for the cookie (only there)."""
        now = self.clock.now()
        self.store.purge_sessions(now)
        sid = new_session_id()
        self.store.insert_session(
            id_hash=digest(sid),
            username=username,
            now=now,
            expires_at=now + self.auth.session_hours * 3600,
            client=client[:100],
        )
        log.info("console session started for %s from %s", username, client or "?")
        self.audit(username, "auth.login", "session", "ok", {"client": client})
        return sid

    def end_session(self, sid: str) -> bool:
        record = self.store.session(digest(sid)) if sid else None
        if record is None:
            return False
        self.store.delete_session(digest(sid))
        self.audit(record.username, "auth.logout", "session", "ok")
        return True

    # ===================================================================== tokens
    def issue_token(
        self, username: str, *, kind: str = "named", name: str = "", ttl: float | None = None
    ) -> IssuedToken:
        """Make an API token (``kind`` login: from /auth/token; named: for automation)."""
        if kind not in ("login", "named"):
            raise ValueError(kind)
        default = self.auth.session_hours * 3600 if kind == "login" else self.auth.token_days * 86400
        lifetime = default if ttl is None else ttl
        if lifetime <= 0 or lifetime > MAX_TOKEN_SECONDS:
            raise Unprocessable("expires_in must be between 1 second and 366 days", field="expires_in")
        now = self.clock.now()
        self.store.purge_tokens(now - _TOKEN_AFTERLIFE)
        token = new_token()
        token_id = self.store.insert_token(
            username=username,
            name=name,
            kind=kind,
            token_hash=digest(token),
            hint=token_hint(token),
            now=now,
            expires_at=now + lifetime,
        )
        log.info("issued %s token %d (%s) to %s", kind, token_id, token_hint(token), username)
        self.audit(username, "token.create", f"token/{token_id}", "ok", {"name": name, "kind": kind})
        return IssuedToken(id=token_id, token=token, name=name, expires_at=now + lifetime)

    def tokens(self, username: str) -> list[TokenRecord]:
        return self.store.tokens_of(username)

    def revoke_token(self, token_id: int, *, by: Principal) -> TokenRecord:
        """Revoke a token of ``by`` (platform admins: anyone's). Another's token is NotFound, like a missing one."""
        record = self.store.token(token_id)
        if record is None or (record.username != by.username and not by.is_platform_admin):
            raise NotFound(f"no token {token_id}")
        self.store.revoke_token(token_id, self.clock.now())
        self.audit(by.username, "token.revoke", f"token/{token_id}", "ok", {"owner": record.username})
        return self.store.token(token_id) or record

    def revoke_token_value(self, token: str) -> bool:
        """Revoke the token presented (API logout). Returns whether a live token was revoked."""
        record = self.store.token_by_hash(digest(token)) if token else None
        if record is None or record.revoked_at is not None:
            return False
        self.store.revoke_token(record.id, self.clock.now())
        self.audit(record.username, "token.revoke", f"token/{record.id}", "ok", {"owner": record.username})
        return True
