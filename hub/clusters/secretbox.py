"""Sealing cluster credentials at rest (the only importer of ``cryptography``).

Fernet (AES-128-CBC with HMAC-SHA256, a random IV per message, a timestamp) from ``cryptography``
rather than anything of our own: authenticated encryption, so a tampered or wrongly keyed row
fails loudly instead of yielding garbage credentials. The key is ``clusters.secret_key``
(``KUBEHUB_CLUSTERS_SECRET_KEY``): one Fernet key, or a comma list for rotation (the first seals,
every one opens), made with ``kubehub cluster-key``. It is never generated into the data
directory: a key stored beside the state it protects would protect nothing against whoever
copies the database.

Each sealed value is bound to its cluster's name (the name is sealed with it and checked on
opening), so a row's ciphertext copied onto another cluster's row does not open there.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from hub.errors import ConfigError

SETTING = "KUBEHUB_CLUSTERS_SECRET_KEY"


class SealError(Exception):
    """A sealed value does not open with the configured keys (wrong key, or tampered with)."""


def new_key() -> str:
    """A fresh key for ``clusters.secret_key``."""
    return Fernet.generate_key().decode("ascii")


class SecretBox:
    """Seals and opens credentials with the configured key(s)."""

    def __init__(self, keys: str) -> None:
        parts = [k.strip() for k in keys.split(",") if k.strip()]
        if not parts:
            raise ConfigError(SETTING, "is empty")
        try:
            self._fernet = MultiFernet([Fernet(k.encode("ascii")) for k in parts])
        except (ValueError, UnicodeEncodeError) as exc:
            raise ConfigError(
                SETTING, "must be Fernet keys (32 bytes, url-safe base64; `kubehub cluster-key`)"
            ) from exc

    def seal(self, cluster: str, kind: str, secret: str) -> bytes:
        """``kind`` (kubeconfig | token) and the cluster's name travel inside the ciphertext."""
        return self._fernet.encrypt(f"{cluster}\n{kind}\n".encode() + secret.encode("utf-8"))

    def open(self, cluster: str, sealed: bytes) -> tuple[str, str]:
        """(kind, secret) of a value sealed for ``cluster``."""
        try:
            plain = self._fernet.decrypt(sealed)
        except InvalidToken as exc:
            raise SealError(f"the credentials of cluster {cluster!r} do not open with {SETTING}") from exc
        name, kind, secret = plain.decode("utf-8").split("\n", 2)
        if name != cluster:
            raise SealError(f"the credentials stored for cluster {cluster!r} were sealed for another cluster")
        return kind, secret

    def rotate(self, sealed: bytes) -> bytes:
        """The value sealed again with the first key (after a key was added in front)."""
        try:
            return self._fernet.rotate(sealed)
        except InvalidToken as exc:
            raise SealError(f"a stored credential does not open with {SETTING}") from exc
