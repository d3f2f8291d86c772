"""LDAP / Active Directory sign-in: the only module that imports ``ldap3``.

Bind-and-search, the usual way to check a directory password without knowing the DN layout:

1. connect (``ldaps://``, or ``ldap://`` upgraded with StartTLS before anything is sent),
   verifying the server's certificate against ``ldap.ca_file`` (or the system's CAs);
2. bind as the service account (``ldap.bind_dn``) and search ``ldap.user_base`` with
   ``ldap.user_filter``, the user name escaped (RFC 4515: ``*``, ``(``, ``)``, ``\\`` and NUL
   become ``\\2a``...; names with them are refused before that anyway). Exactly one entry
   must match;
3. refuse a disabled account: OpenLDAP's ppolicy ``pwdAccountLockedTime`` (set = locked),
   Active Directory's ``userAccountControl`` bit 2 (ACCOUNTDISABLE), or 389-DS/FreeIPA's
   ``nsAccountLock: TRUE``;
4. bind as the user's DN with the password. An empty password is refused before any bind:
   RFC 4513 §5.1.2 makes "DN + empty password" an *unauthenticated* bind that many servers
   accept, and it must never count as a login;
5. read the groups: those whose ``member`` is the user, then (nested groups) those whose
   member is one of these, up to ``ldap.nested_depth`` levels, by repeated searches. A
   recursive search works on every directory (OpenLDAP's memberOf overlay does not follow
   nesting; AD's LDAP_MATCHING_RULE_IN_CHAIN exists only on AD), and cycles are cut.

A directory that does not answer, times out or presents an untrusted certificate raises
:class:`BackendUnavailable` naming "ldap directory" (503), with the ldap3 error chained;
wrong passwords and unknown users raise :class:`Unauthenticated` (401). Each operation opens
its own connection: sign-ins are rare next to API calls, and no pooled connection can then
carry one user's bind into another's request.
"""

from __future__ import annotations

import logging
import math
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ldap3 import NONE, SUBTREE, Connection, Server, Tls
from ldap3.core.exceptions import LDAPException, LDAPSocketOpenError, LDAPStartTLSError
from ldap3.utils.conv import escape_filter_chars

from hub.errors import BackendUnavailable, Unauthenticated
from hub.settings import LdapSettings
from hub.tenancy.external import AccountRefused, ExternalUser

log = logging.getLogger("kubehub.ldap")

BACKEND = "ldap directory"
_MAX_GROUPS = 1000  # a user in more groups than this is a directory problem, not a sign-in
_AD_ACCOUNTDISABLE = 0x2
_REFUSED_CHARACTERS = frozenset("*()\\\x00")
_USER_ATTRIBUTES = ["cn", "displayName", "mail", "pwdAccountLockedTime", "userAccountControl", "nsAccountLock"]


@dataclass(frozen=True)
class _Entry:
    dn: str
    attributes: dict[str, list[Any]]

    def first(self, name: str) -> str:
        values = self.attributes.get(name) or []
        return str(values[0]) if values else ""


class LdapDirectory:
    """:class:`hub.tenancy.external.PasswordDirectory` over an LDAP server."""

    source = "ldap"

    def __init__(self, settings: LdapSettings) -> None:
        self.settings = settings
        self.recheck_seconds = settings.recheck_seconds
        parts = urlsplit(settings.url)
        self._ldaps = parts.scheme == "ldaps"
        self._host = parts.hostname or "localhost"
        self._port = parts.port or (636 if self._ldaps else 389)
        self._start_tls = settings.start_tls and not self._ldaps

    # ------------------------------------------------------------------------------ public
    def authenticate(self, username: str, password: str) -> ExternalUser:
        if not password:
            raise Unauthenticated("invalid user name or password")  # never an unauthenticated bind
        entry, groups = self._find(username)
        with self._connection(entry.dn, password) as conn:
            if not conn.bound:
                log.info("ldap bind refused for %s: %s", entry.dn, conn.result.get("description"))
                raise Unauthenticated("invalid user name or password")
        return self._user(username, entry, groups)

    def lookup(self, username: str) -> ExternalUser | None:
        try:
            entry, groups = self._find(username)
        except AccountRefused:
            return None
        return self._user(username, entry, groups)

    def check(self) -> None:
        """Connect and bind as the service account (readiness); raises BackendUnavailable."""
        with self._connection(self.settings.bind_dn, self.settings.bind_password) as conn:
            self._require_service_bind(conn)

    # ------------------------------------------------------------------------------ steps
    def _find(self, username: str) -> tuple[_Entry, tuple[str, ...]]:
        """The one entry for ``username`` (not disabled) and its group names, by the service account."""
        if not username or len(username) > 256 or any(c in _REFUSED_CHARACTERS or ord(c) < 32 for c in username):
            raise AccountRefused("a user name with filter characters")
        with self._connection(self.settings.bind_dn, self.settings.bind_password) as conn:
            self._require_service_bind(conn)
            query = self.settings.user_filter.replace("{username}", escape_filter_chars(username))
            found = self._search(conn, self.settings.user_base, query, _USER_ATTRIBUTES, size_limit=2)
            if not found:
                raise AccountRefused("not in the directory")
            if len(found) > 1:
                log.warning("ldap user filter matched several entries for one user name; refusing the sign-in")
                raise AccountRefused("several directory entries")
            entry = found[0]
            if self._disabled(entry):
                raise AccountRefused("disabled in the directory")
            groups = self._groups(conn, entry.dn)
        return entry, groups

    def _groups(self, conn: Connection, user_dn: str) -> tuple[str, ...]:
        base = self.settings.group_base or self.settings.user_base
        name_attr = self.settings.group_name_attribute
        names: set[str] = set()
        seen: set[str] = {user_dn.lower()}
        frontier = [user_dn]
        for _ in range(self.settings.nested_depth + 1):
            found_dns: list[str] = []
            for member in frontier:
                query = self.settings.group_filter.replace("{dn}", escape_filter_chars(member))
                for group in self._search(conn, base, query, [name_attr], size_limit=_MAX_GROUPS):
                    if group.dn.lower() in seen:
                        continue  # a cycle, or reached by two paths
                    seen.add(group.dn.lower())
                    if group.first(name_attr):
                        names.add(group.first(name_attr))
                    found_dns.append(group.dn)
            if not found_dns or len(seen) > _MAX_GROUPS:
                break
            frontier = found_dns
        return tuple(sorted(names))

    @staticmethod
    def _disabled(entry: _Entry) -> bool:
        if entry.attributes.get("pwdAccountLockedTime"):
            return True
        if entry.first("nsAccountLock").strip().lower() == "true":
            return True
        uac = entry.first("userAccountControl")
        return uac.isdigit() and bool(int(uac) & _AD_ACCOUNTDISABLE)

    @staticmethod
    def _user(username: str, entry: _Entry, groups: tuple[str, ...]) -> ExternalUser:
        return ExternalUser(
            username=username.lower(),
            display_name=entry.first("displayName") or entry.first("cn"),
            email=entry.first("mail"),
            groups=groups,
        )

    # ------------------------------------------------------------------------------ ldap3
    def _server(self) -> Server:
        tls = Tls(
            validate=ssl.CERT_REQUIRED,
            ca_certs_file=self.settings.ca_file or None,
            version=ssl.PROTOCOL_TLS_CLIENT,
        )
        return Server(
            self._host,
            port=self._port,
            use_ssl=self._ldaps,
            tls=tls,
            get_info=NONE,
            connect_timeout=self.settings.timeout,
        )

    def _connection(self, user: str, password: str) -> _Bound:
        return _Bound(self, user, password)

    def _require_service_bind(self, conn: Connection) -> None:
        if not conn.bound:
            raise BackendUnavailable(
                BACKEND,
                f"the service account's bind was refused ({conn.result.get('description')}); check ldap.bind_dn",
            )

    def _search(
        self, conn: Connection, base: str, query: str, attributes: list[str], *, size_limit: int
    ) -> list[_Entry]:
        try:
            conn.search(
                base,
                query,
                search_scope=SUBTREE,
                attributes=attributes,
                size_limit=size_limit,
                time_limit=max(1, int(self.settings.timeout)),
            )
        except LDAPException as exc:
            raise BackendUnavailable(BACKEND, f"search failed: {exc}") from exc
        code = conn.result.get("result", 0)
        if code not in (0, 4, 32):  # success, sizeLimitExceeded (we asked for few), noSuchObject
            raise BackendUnavailable(BACKEND, f"search failed: {conn.result.get('description')}")
        return [_entry(e) for e in conn.response or [] if e.get("type") == "searchResEntry"]


def _entry(raw: dict[str, Any]) -> _Entry:
    attributes = {
        k: list(v) if isinstance(v, list) else [v] for k, v in raw["attributes"].items() if v not in (None, [], "")
    }
    return _Entry(dn=str(raw["dn"]), attributes=attributes)


class _Bound:
    """A connection opened, secured and bound for one ``with`` block; closed after it."""

    def __init__(self, directory: LdapDirectory, user: str, password: str) -> None:
        self.directory = directory
        self.user = user
        self.password = password
        self.conn: Connection | None = None

    def __enter__(self) -> Connection:
        d = self.directory
        anonymous = not self.user
        conn = Connection(
            d._server(),
            user=None if anonymous else self.user,
            password=None if anonymous else self.password,
            read_only=True,
            auto_referrals=False,
            receive_timeout=max(1, math.ceil(d.settings.timeout)),  # ldap3 packs it as an integer
            raise_exceptions=False,
        )
        self.conn = conn
        try:
            conn.open()
            if d._start_tls and not conn.start_tls():
                raise BackendUnavailable(BACKEND, f"StartTLS refused: {conn.result.get('description')}")
            if not anonymous and not self.password:
                return conn  # never bind with an empty password: conn.bound stays False
            conn.bind()
        except LDAPStartTLSError as exc:
            self.__exit__(None, None, None)
            raise BackendUnavailable(BACKEND, f"TLS failed ({_reason(exc)}); check ldap.ca_file") from exc
        except LDAPSocketOpenError as exc:
            self.__exit__(None, None, None)
            raise BackendUnavailable(BACKEND, f"cannot connect to {d._host}:{d._port} ({_reason(exc)})") from exc
        except LDAPException as exc:
            self.__exit__(None, None, None)
            raise BackendUnavailable(BACKEND, f"{type(exc).__name__}: {_reason(exc)}") from exc
        except BackendUnavailable:
            self.__exit__(None, None, None)
            raise
        return conn

    def __exit__(self, *exc: object) -> None:
        if self.conn is not None:
            try:
                self.conn.unbind()
            except LDAPException:
                pass
            self.conn = None


def _reason(exc: BaseException) -> str:
    text = str(exc)
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        return "the server's certificate is not trusted"
    return text[:200]


__all__ = ["BACKEND", "LdapDirectory"]
