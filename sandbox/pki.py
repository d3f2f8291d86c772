"""The sandbox cluster's certificates, made with the ``openssl`` command.

One CA signs: the API server's serving certificate (valid for 127.0.0.1 and the in-cluster
names), an admin client certificate in ``system:masters`` (used by the controllers, KWOK, the
hub's kubeconfig and Prometheus's scrapes), and KWOK's serving certificate (the API server calls
it for pod logs). A separate RSA key signs service-account tokens. Ten years of validity: the
sandbox is a local toy and must never break because a certificate expired.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

_DAYS = "3650"


def _openssl(*args: str, cwd: Path) -> None:
    proc = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {proc.stderr.strip()}")


def _issue(pki: Path, name: str, subject: str, *, server_names: list[str] | None = None, client: bool = False) -> None:
    _openssl("genrsa", "-out", f"{name}.key", "2048", cwd=pki)
    _openssl("req", "-new", "-key", f"{name}.key", "-subj", subject, "-out", f"{name}.csr", cwd=pki)
    ext = ["basicConstraints=CA:FALSE", "keyUsage=critical,digitalSignature,keyEncipherment"]
    usages = []
    if server_names:
        usages.append("serverAuth")
        alt = ",".join(("IP:" if n[0].isdigit() else "DNS:") + n for n in server_names)
        ext.append(f"subjectAltName={alt}")
    if client:
        usages.append("clientAuth")
    ext.append("extendedKeyUsage=" + ",".join(usages))
    (pki / f"{name}.ext").write_text("\n".join(ext) + "\n")
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", f"{name}.crt", "-days", _DAYS, "-sha256", "-extfile", f"{name}.ext",
        cwd=pki,
    )  # fmt: skip
    (pki / f"{name}.csr").unlink()
    (pki / f"{name}.ext").unlink()


def ensure_pki(pki: Path, *, ca_name: str = "kubehub-sandbox-ca") -> None:
    """Create the certificates once; an existing complete set is kept (the cluster trusts it).

    Each cluster of a several-cluster sandbox has its own set (``ca_name`` tells the CAs apart):
    one cluster's admin certificate is worth nothing to the other's API server."""
    wanted = ["ca.crt", "admin.crt", "apiserver.crt", "kwok.crt", "sa.key", "sa.pub"]
    if all((pki / f).exists() for f in wanted):
        return
    pki.mkdir(parents=True, exist_ok=True)
    pki.chmod(0o700)
    _openssl("genrsa", "-out", "ca.key", "2048", cwd=pki)
    _openssl(
        "req", "-x509", "-new", "-key", "ca.key", "-subj", f"/CN={ca_name}", "-days", _DAYS, "-sha256",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-out", "ca.crt",
        cwd=pki,
    )  # fmt: skip
    _issue(
        pki,
        "apiserver",
        "/CN=kube-apiserver",
        server_names=[
            "127.0.0.1", "10.96.0.1", "localhost", "kubernetes", "kubernetes.default",
            "kubernetes.default.svc", "kubernetes.default.svc.cluster.local",
        ],
    )  # fmt: skip
    _issue(pki, "admin", "/O=system:masters/CN=kubehub-sandbox-admin", client=True)
    _issue(pki, "kwok", "/CN=kwok", server_names=["127.0.0.1", "localhost"])
    _openssl("genrsa", "-out", "sa.key", "2048", cwd=pki)
    _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)
    for key in pki.glob("*.key"):
        key.chmod(0o600)


def write_kubeconfig(path: Path, *, pki: Path, server: str, name: str = "kubehub-sandbox") -> None:
    """A kubeconfig with absolute certificate paths, so it works from any working directory."""
    text = f"""apiVersion: v1
kind: Config
clusters:
- name: {name}
  cluster:
    certificate-authority: {pki / "ca.crt"}
    server: {server}
users:
- name: {name}-admin
  user:
    client-certificate: {pki / "admin.crt"}
    client-key: {pki / "admin.key"}
contexts:
- name: {name}
  context:
    cluster: {name}
    user: {name}-admin
current-context: {name}
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    # Only when it changed: kube-state-metrics watches its kubeconfig and restarts on any write.
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")
