"""The OIDC provider's signing keys, made by the sandbox in Python (sandbox/oidc.py): the first
when the files are written, each rotated one by ``ProviderFiles.rotate()``. Node's
``generateKeyPairSync`` is never asked (it can deadlock in Node 20); that the provider serves
these keys and the hub verifies tokens signed with them is tested on a real provider
(tests/integration/test_oidc_login.py). Here: the JWK is a consistent RSA key as OpenSSL itself
checks it, and rotation keeps the new key first and the previous one published."""

from __future__ import annotations

import base64
import os
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sandbox import oidc


def _int(field: str) -> int:
    return int.from_bytes(base64.urlsafe_b64decode(field + "=" * (-len(field) % 4)), "big")


def _pem(jwk: dict[str, str]) -> bytes:
    public = rsa.RSAPublicNumbers(_int(jwk["e"]), _int(jwk["n"]))
    numbers = rsa.RSAPrivateNumbers(
        _int(jwk["p"]), _int(jwk["q"]), _int(jwk["d"]), _int(jwk["dp"]), _int(jwk["dq"]), _int(jwk["qi"]), public
    )
    key = numbers.private_key()
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _files(tmp_path: Path) -> oidc.ProviderFiles:
    files = oidc.ProviderFiles(tmp_path / "provider", port=1, tls=None)
    files.write([oidc.Client("c", "s" * 24, ("http://hub.test/cb",))], [oidc.User("sam", "pw", ("g",))])
    return files


def test_the_first_key_is_a_valid_rsa_2048_signing_jwk(tmp_path: Path) -> None:
    files = _files(tmp_path)
    (key,) = files.signing_keys()
    assert key["kty"] == "RSA" and key["alg"] == "RS256" and key["use"] == "sig" and len(key["kid"]) == 12
    assert stat.S_IMODE(files.keys_file.stat().st_mode) == 0o600
    # OpenSSL's own consistency check (p*q = n, d, the CRT values) and its idea of the size
    out = subprocess.run(
        ["openssl", "rsa", "-check", "-noout", "-text"], input=_pem(key), capture_output=True, check=True
    ).stdout.decode()
    assert "RSA key ok" in out and "2048 bit" in out
    modulus = subprocess.run(
        ["openssl", "rsa", "-noout", "-modulus"], input=_pem(key), capture_output=True, check=True
    ).stdout.decode()
    assert int(modulus.strip().split("=", 1)[1], 16) == _int(key["n"])


def test_rotation_puts_a_new_key_first_and_keeps_only_the_previous_one(tmp_path: Path) -> None:
    files = _files(tmp_path)
    (first,) = files.signing_keys()
    second = files.rotate()
    assert [k["kid"] for k in files.signing_keys()] == [second, first["kid"]]
    assert files.signing_keys()[1] == first  # the old key is kept as it was
    third = files.rotate()
    assert [k["kid"] for k in files.signing_keys()] == [third, second]  # the oldest is retired
    assert len({first["kid"], second, third}) == 3
    assert len({k["n"] for k in files.signing_keys()}) == 2
    assert stat.S_IMODE(files.keys_file.stat().st_mode) == 0o600
    assert not files.keys_file.with_suffix(".tmp").exists()
    # writing the configuration again keeps the rotated keys
    before = files.keys_file.read_text()
    files.write([oidc.Client("c", "s" * 24, ("http://hub.test/cb",))], [oidc.User("sam", "pw", ("g",))])
    assert files.keys_file.read_text() == before


def test_the_provider_program_never_makes_a_key() -> None:
    """Node 20's key generation can deadlock; the program only reads ``keys.json``."""
    source = (oidc.SOURCE / "provider.mjs").read_text(encoding="utf-8")
    assert "generateKey" not in source and "--rotate" not in source and "keys_file" in source


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a file to another user")
def test_rotation_as_root_keeps_the_key_file_readable_by_the_providers_user(tmp_path: Path) -> None:
    """As root the provider runs as the unprivileged sandbox user; a ``keys.json`` left to root
    (mode 0600) would stop its next start."""
    files = _files(tmp_path)
    os.chown(files.keys_file, 65534, 65534)
    files.rotate()
    st = files.keys_file.stat()
    assert (st.st_uid, st.st_gid) == (65534, 65534) and stat.S_IMODE(st.st_mode) == 0o600
