"""``kubehub sandbox up | down | status | reset``: the command-line face of :class:`sandbox.Sandbox`."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path
from typing import Any

from sandbox.clusters import CLUSTER_PORT_STRIDE, MAX_CLUSTERS, max_port_offset
from sandbox.config import DEFAULT_NODES, DEFAULT_PODS, DEFAULT_PORT_BASE, PORT_OFFSETS
from sandbox.core import Sandbox
from sandbox.procs import ComponentError
from sandbox.tenants import MAX_TENANTS, SCALE_PROFILE


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="sandbox_command", metavar="ACTION")
    sub.required = True

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--dir", help="sandbox directory (default: $KUBEHUB_DATA_DIR/sandbox or ~/.local/share/kubehub/sandbox)"
        )

    up = sub.add_parser("up", help="start (or repair) the sandbox and seed it; reuses running components")
    common(up)
    up.add_argument("--nodes", type=int, help=f"simulated nodes (default {DEFAULT_NODES}; kept from the first up)")
    up.add_argument("--pods", type=int, help=f"seeded pods, about (default {DEFAULT_PODS}; kept from the first up)")
    hub = up.add_mutually_exclusive_group()
    hub.add_argument(
        "--no-hub", action="store_true", help="start everything except the hub (tests start their own); remembered"
    )
    hub.add_argument("--hub", action="store_true", help="start the hub too (the default; undoes an earlier --no-hub)")
    up.add_argument(
        "--port-base",
        type=int,
        help=f"ports are BASE+offset, e.g. API server BASE+443, Prometheus BASE+90 (default {DEFAULT_PORT_BASE})",
    )
    up.add_argument(
        "--database",
        choices=("sqlite", "postgresql"),
        help="where the sandbox's hub keeps its state (default sqlite; remembered); PostgreSQL runs either way",
    )
    up.add_argument(
        "--replicas",
        type=int,
        help="hub replicas (default 1; remembered); more than one runs them all on the sandbox's PostgreSQL, "
        "on ports BASE+80, +81, ...",
    )
    up.add_argument(
        "--clusters",
        type=int,
        help=f"Kubernetes clusters (default 1; remembered; at most {MAX_CLUSTERS}); each further one has its own "
        f"control plane, KWOK, kube-state-metrics and nodesim on ports BASE+{CLUSTER_PORT_STRIDE}*i+offset",
    )
    up.add_argument(
        "--tenants",
        type=int,
        help="workspaces of the scale tenancy, each with 3 projects, 10 users and about 11 policies "
        "(default 0: the demo tenancy only; remembered; see docs/sandbox.md)",
    )
    up.add_argument(
        "--profile",
        choices=("scale",),
        help="scale: --nodes 1000 --pods 20000 --tenants 100 (each overridable by its own option)",
    )
    up.add_argument("--json", action="store_true", help="print the status as JSON when done")

    p = sub.add_parser("down", help="stop every process of the sandbox (state is kept)")
    common(p)
    p = sub.add_parser("status", help="components, versions, URLs and demo logins")
    common(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = sub.add_parser("reset", help="stop the sandbox and delete its state (built engines and downloads are kept)")
    common(p)


def apply_profile(args: argparse.Namespace) -> None:
    """``--profile scale`` sets what it implies (SCALE_PROFILE) where no option said otherwise."""
    if getattr(args, "profile", None) == "scale":
        for key, value in SCALE_PROFILE.items():
            if getattr(args, key) is None:
                setattr(args, key, value)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    # A `kill` of `up` stops what it started, as Ctrl-C does, instead of leaving half a stack.
    signal.signal(signal.SIGTERM, _interrupt)
    sb = Sandbox(args.dir)
    cmd = args.sandbox_command
    try:
        if cmd == "up":
            if args.nodes is not None and args.nodes < 1:
                print("kubehub sandbox: --nodes must be at least 1", file=sys.stderr)
                return 2
            if args.pods is not None and args.pods < 1:
                print("kubehub sandbox: --pods must be at least 1", file=sys.stderr)
                return 2
            apply_profile(args)
            if args.tenants is not None and not 0 <= args.tenants <= MAX_TENANTS:
                print(f"kubehub sandbox: --tenants must be within 0..{MAX_TENANTS}", file=sys.stderr)
                return 2
            if args.clusters is not None and not 1 <= args.clusters <= MAX_CLUSTERS:
                print(f"kubehub sandbox: --clusters must be within 1..{MAX_CLUSTERS}", file=sys.stderr)
                return 2
            top = 65535 - max_port_offset(args.clusters or sb.config.clusters)
            if args.port_base is not None and not 1024 <= args.port_base <= top:
                print(f"kubehub sandbox: --port-base must be within 1024..{top}", file=sys.stderr)
                return 2
            warn_ephemeral(args.port_base)
            status = sb.up(
                nodes=args.nodes,
                pods=args.pods,
                hub=False if args.no_hub else True if args.hub else None,
                port_base=args.port_base,
                database=args.database,
                replicas=args.replicas,
                clusters=args.clusters,
                tenants=args.tenants,
            )
            if args.json:
                print(json.dumps(status, indent=2, ensure_ascii=False))
            else:
                print(summary(status))
            return 0
        if cmd == "down":
            stopped = sb.down()
            print(f"stopped {len(stopped)} process(es)" + (f": {', '.join(stopped)}" if stopped else ""))
            return 0
        if cmd == "status":
            status = sb.status()
            if args.json:
                print(json.dumps(status, indent=2, ensure_ascii=False))
            else:
                print(summary(status))
            return 0 if all(c["state"] == "up" for c in status["components"]) else 3
        if cmd == "reset":
            sb.reset()
            return 0
    except ComponentError as exc:
        print(f"kubehub sandbox: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # one line for the user, the traceback in a file for us
        import traceback

        log = sb.logs_dir / "sandbox-errors.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a", encoding="utf-8") as f:
            f.write(traceback.format_exc() + "\n")
        print(f"kubehub sandbox: {cmd} failed: {exc!r:.300} (traceback: {log})", file=sys.stderr)
        return 1
    raise AssertionError(cmd)


def summary(status: dict[str, Any]) -> str:
    lines = [f"sandbox {status['dir']}"]
    width = max(len(c["name"]) for c in status["components"])
    for c in status["components"]:
        lines.append(f"  {c['name']:<{width}}  {c['state']:<8}  {c['version']:<16}  {c['url']}")
    lines.append(f"  kubeconfig: {status['kubeconfig']}")
    for c in status.get("clusters", [])[1:]:
        lines.append(f"  cluster {c['name']}: kubeconfig {c['kubeconfig']} (API server {c['api_server']})")
    lines.append(f"  mailbox:    {status['mailbox']}  (Maildir; new mail under new/)")
    tenants = status.get("tenants")
    if tenants:
        lines.append(
            f"  tenants:    {tenants['workspaces']} workspaces, {tenants['projects']} projects, {tenants['users']} "
            f"users, {tenants['policies']} policies (logins: {tenants['credentials']})"
        )
    if status.get("hub_database"):
        lines.append(f"  hub state:  {status['hub_database']}")
    if status.get("hub_url"):
        lines.append(f"\nkubehub console: {status['hub_url']}")
        if len(status.get("hub_replicas") or []) > 1:
            lines.append(f"hub replicas (one PostgreSQL, one leader): {', '.join(status['hub_replicas'])}")
    if status["credentials"]:
        lines.append("demo logins:")
        for cred in status["credentials"]:
            scope = (
                cred["platform_role"]
                if cred["platform_role"] == "admin"
                else ", ".join(
                    [f"workspace {k}: {v}" for k, v in cred["workspaces"].items()]
                    + [f"project {k}: {v}" for k, v in cred["projects"].items()]
                )
            )
            lines.append(f"  {cred['username']:<14} {cred['password']:<18} ({scope})")
    ldap = status.get("ldap")
    if ldap and ldap.get("users"):
        lines.append(f"directory logins (LDAP, {ldap['url']}; groups -> roles in docs/sandbox.md):")
        for name, password in ldap["users"].items():
            lines.append(f"  {name:<14} {password}" + ("  (locked in the directory)" if name == "dave" else ""))
    sso = status.get("oidc")
    if sso:
        lines.append(f"single sign-on at {sso['issuer']} (the login page's 'Sign in with ...' button):")
        for name, user in sso["users"].items():
            lines.append(f"  {name:<14} {user['password']:<18} (groups: {', '.join(user['groups']) or 'none'})")
    return "\n".join(lines)


def warn_ephemeral(port_base: int | None) -> None:
    """Ports inside the kernel's ephemeral range can be taken at any moment by outgoing connections."""
    if port_base is None:
        return
    try:
        low, high = (int(x) for x in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        return
    top = port_base + max(PORT_OFFSETS.values())
    if port_base <= high and top >= low:
        print(
            f"kubehub sandbox: warning: ports {port_base}..{top} overlap the ephemeral range {low}..{high}; "
            f"a port may be taken by an outgoing connection (choose a base below {low - max(PORT_OFFSETS.values())})",
            file=sys.stderr,
        )
