"""Secrets: password hashing and policy, API tokens, session ids, CSRF tokens, name rules.

Why two kinds of hashing: passwords are chosen by people, so they get argon2id (slow and
memory-hard, against guessing from a stolen database). Tokens and session ids are 256-bit
random values made here, so guessing is hopeless anyway and SHA-256 is enough; a fast hash also
keeps every API request cheap.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from hub.errors import Unprocessable

TOKEN_PREFIX = "khub_"
# 32 random bytes = 256 bits: far beyond brute force, so a plain SHA-256 digest may be stored.
_TOKEN_BYTES = 32

# Users: lower-case so "Alice" and "alice" cannot be two accounts.
USERNAME_RE = re.compile(r"^[a-z0-9]([a-z0-9._-]{0,62}[a-z0-9])?\Z")  # \Z, not $: no trailing newline
# Workspaces and namespaces: Kubernetes DNS-1123 labels (a namespace name must be one).
DNS_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\Z")

MIN_PASSWORD_LENGTH = 10  # with the distinct-character rule, rules out short and repetitive choices
_MIN_DISTINCT = 5
# The most common choices that pass the length rule; a short list catches the lazy ones.
_COMMON = frozenset(
    {
        "password123",
        "password1234",
        "passw0rd123",
        "1234567890",
        "12345678910",
        "qwertyuiop",
        "qwerty12345",
        "1q2w3e4r5t",
        "administrator",
        "letmein123",
        "changeme123",
        "welcome123",
        "iloveyou123",
        "kubernetes",
        "kubernetes123",
        "kubesphere",
        "kubesphere123",
        "admin12345",
        "abcdefghij",
        "abc1234567",
    }
)


def check_password_strength(password: object, *, username: str = "", field: str = "password") -> str:
    """Return the password if acceptable, else raise Unprocessable saying why."""
    if not isinstance(password, str) or not password:
        raise Unprocessable("a password is required", field=field)
    if len(password) < MIN_PASSWORD_LENGTH:
        raise Unprocessable(f"the password must have at least {MIN_PASSWORD_LENGTH} characters", field=field)
    if len(password) > 1024:  # argon2 would hash more, but a megabyte password is an attack, not a secret
        raise Unprocessable("the password must have at most 1024 characters", field=field)
    if len(set(password)) < _MIN_DISTINCT:
        raise Unprocessable(f"the password must use at least {_MIN_DISTINCT} different characters", field=field)
    lowered = password.lower()
    if username and username.lower() in lowered:
        raise Unprocessable("the password must not contain the user name", field=field)
    if lowered in _COMMON:
        raise Unprocessable("this password is too common; choose another", field=field)
    return password


@dataclass(frozen=True)
class PasswordHashing:
    """argon2id with tunable cost (tests lower it; production keeps argon2-cffi's defaults)."""

    memory_kib: int = 65536
    time_cost: int = 3
    parallelism: int = 4

    def _hasher(self) -> PasswordHasher:
        return PasswordHasher(time_cost=self.time_cost, memory_cost=self.memory_kib, parallelism=self.parallelism)

    def hash(self, password: str) -> str:
        return self._hasher().hash(password)

    def verify(self, encoded: str, password: str) -> bool:
        try:
            return bool(self._hasher().verify(encoded, password))
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, encoded: str) -> bool:
        try:
            return bool(self._hasher().check_needs_rehash(encoded))
        except InvalidHashError:
            return True


def new_token() -> str:
    """A fresh API token: a recognisable prefix (secret scanners can spot leaks) plus 256 random bits."""
    return TOKEN_PREFIX + secrets.token_urlsafe(_TOKEN_BYTES)


def new_session_id() -> str:
    return secrets.token_urlsafe(_TOKEN_BYTES)


def digest(secret: str) -> str:
    """The stored form of a token or session id."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def token_hint(token: str) -> str:
    """What a token list shows so users can tell tokens apart (8 of its ~43 random characters)."""
    return token[: len(TOKEN_PREFIX) + 4] + "…" + token[-4:]


def csrf_for_session(session_id: str) -> str:
    """The CSRF token of a session, derived from its id so nothing more needs storing.

    Knowing it requires the session id, which only the session cookie carries and a cross-site
    page cannot read.
    """
    return hmac.new(session_id.encode("utf-8"), b"kubehub-csrf-v1", hashlib.sha256).hexdigest()


def same_secret(a: str | None, b: str | None) -> bool:
    """Constant-time comparison that treats missing values as a mismatch."""
    if not a or not b:
        return False
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))
