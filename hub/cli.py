"""The ``kubehub`` command.

Every subcommand turns a HubError into one line on stderr and a non-zero exit, so users see
which setting or input is wrong rather than a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

import hub
from hub.errors import HubError
from hub.settings import load_settings, settings_markdown

log = logging.getLogger("kubehub")


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def cmd_version(args: argparse.Namespace) -> int:
    print(f"kubehub {hub.__version__}")
    return 0


def cmd_settings(args: argparse.Namespace) -> int:
    print(settings_markdown())
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from waitress import create_server

    from hub.runtime import build_hub
    from hub.runtime.monitoring import keep_windows, restore_windows

    settings = load_settings(config_file=args.config)
    changes: dict[str, Any] = {}
    if args.host:
        changes["host"] = args.host
    if args.port:
        changes["port"] = args.port
    if changes:
        settings = settings.replace(http=changes)
    if args.role == "web":
        settings = settings.replace(alerts={"evaluate": False}, logs={"ship": False})
    _configure_logging(settings.log_level)
    print(f"kubehub {hub.__version__}: preparing state in {settings.data_dir} ...", file=sys.stderr, flush=True)
    the_hub = build_hub(settings)
    if args.role in ("all", "worker"):
        the_hub.start_background()
    server = None
    if args.role in ("all", "web"):
        from web import create_app
        from web.serving import LastIdleFirstDispatcher

        app = create_app(hub=the_hub)
        # The most recently idle worker takes the next request (web/serving.py says why).
        dispatcher = LastIdleFirstDispatcher()
        dispatcher.set_thread_count(settings.http.threads)
        try:
            server = create_server(
                app,
                host=settings.http.host,
                port=settings.http.port,
                threads=settings.http.threads,
                _dispatcher=dispatcher,
            )
        except OSError as exc:
            dispatcher.shutdown()
            the_hub.close()
            raise HubError(
                f"cannot listen on {settings.http.host}:{settings.http.port} ({exc.strerror}); "
                "choose another with --port or KUBEHUB_HTTP_PORT"
            ) from exc
        print(f"kubehub {hub.__version__} serving on {settings.public_url}", file=sys.stderr, flush=True)

    stop = threading.Event()
    if server is not None:
        from web.serving import compile_templates, settle_collector

        restore_windows(the_hub)  # a restart does not ask Prometheus for whole windows again
        compile_templates(app)  # before the first request: web/serving.py says why
        settle_collector()  # after start: web/serving.py says why

    def _stop(signum: int, frame: Any) -> None:
        stop.set()
        if server is not None:
            from web.serving import drain

            server.close()  # no new connections; the open ones close as their requests end
            threading.Thread(target=drain, args=(server,), name="kubehub-drain", daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        if server is not None:
            server.run()
        else:
            print("kubehub worker running (no web server)", file=sys.stderr, flush=True)
            stop.wait()
    except OSError:
        if not stop.is_set():
            raise
    finally:
        if server is not None:
            keep_windows(the_hub)
        the_hub.close()
    return 0


def cmd_rules_check(args: argparse.Namespace) -> int:
    from hub.alerts.policy import check_policy_files
    from hub.collectors.catalogue import default_catalogue

    # Metric names (and units) per level come from the monitoring catalogue; hub.alerts may
    # not import the collectors, so the CLI hands them over.
    catalogue = default_catalogue()
    metrics: dict[str, Any] = {level: catalogue.units(level) for level in ("nodes", "workloads")}
    problems, checked = check_policy_files(args.files, metrics=metrics)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s) in {checked} file(s)", file=sys.stderr)
        return 1
    print(f"{checked} policy file(s) valid")
    return 0


def cmd_users_create_admin(args: argparse.Namespace) -> int:
    from hub.runtime.tenancy import create_admin_from_cli

    settings = load_settings(config_file=args.config)
    return create_admin_from_cli(settings, username=args.username, password_env=args.password_env)


def cmd_collect_node(args: argparse.Namespace) -> int:
    from hub.collectors.logs.nodevolume import run_from_args

    _configure_logging("info")
    return run_from_args(args)


def cmd_collector_token(args: argparse.Namespace) -> int:
    from hub.collectors.logs.nodewire import new_collector_token

    token, digest = new_collector_token()
    print(f"token:  {token}\nsha256: {digest}")
    print("give the token to the collectors; add the digest to KUBEHUB_LOGS_COLLECTOR_TOKEN_SHA256", file=sys.stderr)
    return 0


def cmd_sandbox(args: argparse.Namespace) -> int:
    from sandbox.cli import run as sandbox_run

    return int(sandbox_run(args))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kubehub",
        description="Kubernetes observability and alerting hub: metrics, logs, alerts and workloads, per tenant.",
    )
    parser.add_argument("--config", help="YAML settings file (default: $KUBEHUB_CONFIG)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("version", help="print the version")
    p.set_defaults(func=cmd_version)

    p = sub.add_parser("settings", help="print every setting with its environment variable and default")
    p.set_defaults(func=cmd_settings)

    p = sub.add_parser("serve", help="run the console, API and background workers")
    p.add_argument("--host", help="listen address (default: KUBEHUB_HTTP_HOST or 127.0.0.1)")
    p.add_argument("--port", type=int, help="listen port (default: KUBEHUB_HTTP_PORT or 8080)")
    p.add_argument(
        "--role",
        choices=["all", "web", "worker"],
        default="all",
        help="all: web + workers (default); web: console and API only; worker: rule engine and log shipper only",
    )
    p.set_defaults(func=cmd_serve)

    rules = sub.add_parser("rules", help="alert policy files")
    rules_sub = rules.add_subparsers(dest="rules_command", metavar="ACTION")
    rules_sub.required = True
    p = rules_sub.add_parser("check", help="validate policy files; prints file:line: field: problem")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.set_defaults(func=cmd_rules_check)
    from hub.runtime.rules_cli import add_arguments as rules_arguments

    rules_arguments(rules_sub)  # import, export (Prometheus rule files; docs/alerting.md)

    users = sub.add_parser("users", help="hub users")
    users_sub = users.add_subparsers(dest="users_command", metavar="ACTION")
    users_sub.required = True
    p = users_sub.add_parser("create-admin", help="create the first platform admin (prompts for the password)")
    p.add_argument("username")
    p.add_argument(
        "--password-env",
        metavar="VAR",
        help="read the password from this environment variable instead of prompting",
    )
    p.set_defaults(func=cmd_users_create_admin)

    p = sub.add_parser(
        "collect-node",
        help="collect this node's container logs from /var/log/pods (run as a DaemonSet; docs/logs.md)",
    )
    from hub.collectors.logs.nodecollector import add_arguments as collector_arguments
    from hub.collectors.logs.nodevolume import add_arguments as volume_arguments

    collector_arguments(p)
    volume_arguments(p)
    p.set_defaults(func=cmd_collect_node)

    p = sub.add_parser("collector-token", help="make a collector token and print it with its SHA-256 digest")
    p.set_defaults(func=cmd_collector_token)

    sb = sub.add_parser(
        "sandbox",
        help="a local real stack (Kubernetes API + KWOK, Prometheus, Elasticsearch, SMTP) with the hub",
    )
    try:
        from sandbox.cli import add_arguments as sandbox_arguments
    except ImportError:  # the sandbox ships with the source tree, not necessarily with every install
        sb.set_defaults(func=lambda a: _no_sandbox())
    else:
        sandbox_arguments(sb)
        sb.set_defaults(func=cmd_sandbox)
    return parser


def _no_sandbox() -> int:
    print(
        "kubehub: the sandbox is not part of this installation; install kubehub from its source tree",
        file=sys.stderr,
    )
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except HubError as exc:
        print(f"kubehub: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("kubehub: interrupted", file=sys.stderr)
        return 130


def _json(obj: Any) -> str:
    return json.dumps(obj, indent=2, ensure_ascii=False)


if __name__ == "__main__":
    sys.exit(main())
