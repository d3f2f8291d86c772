"""``kubehub rules import`` and ``kubehub rules export``: Prometheus rule files and
``PrometheusRule`` objects into policies, and policies out as a ``PrometheusRule``
(docs/alerting.md "Import and export"). The conversion is ``hub.alerts.rule_import`` (pure);
this module reads the files, prints the report and reaches the hub's state store.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from hub.alerts.policy import parse_policy
from hub.alerts.rule_import import (
    DEFAULT_SEVERITY_MAP,
    MAX_FILE_BYTES,
    ImportOptions,
    export_policies,
    import_rule_texts,
)
from hub.errors import HubError
from hub.settings import Settings
from hub.timeutil import parse_duration

_SUFFIXES = {".yaml", ".yml", ".json"}


def add_arguments(rules_sub: Any) -> None:
    p = rules_sub.add_parser(
        "import",
        help="import Prometheus rule files / PrometheusRule YAML as policies; prints what was imported, changed or not",
    )
    p.add_argument("files", nargs="+", metavar="FILE|DIR")
    p.add_argument("--level", choices=["node", "workload"], default="node", help="policy level (default node: admins)")
    p.add_argument("--namespace", help="the project of workload-level policies (expressions are scoped to it)")
    p.add_argument(
        "--severity-map",
        default="",
        metavar="FROM=TO,...",
        help="map labels.severity values onto critical/major/minor (added to the default mapping)",
    )
    p.add_argument("--default-severity", choices=["critical", "major", "minor"], default="major")
    p.add_argument("--default-interval", default="1m", help="period of groups without an interval (Prometheus: 1m)")
    p.add_argument("--receiver", action="append", default=[], metavar="EMAIL", help="an email receiver of every policy")
    p.add_argument("--out", metavar="DIR", help="write one policy YAML per policy into DIR")
    p.add_argument("--apply", action="store_true", help="create the policies in the hub's state store")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_rules_import)
    p = rules_sub.add_parser("export", help="write the hub's policies as a PrometheusRule (YAML)")
    p.add_argument("--out", metavar="FILE", help="write to FILE instead of standard output")
    p.add_argument("--namespace", help="only this project's workload policies")
    p.add_argument("--level", choices=["node", "workload"], help="only this level")
    p.add_argument("--name", default="kubehub", help="metadata.name of the PrometheusRule")
    p.set_defaults(func=cmd_rules_export)


def read_rule_files(paths: list[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """(name, text) of every file (a directory: its .yaml/.yml/.json files), and errors."""
    out: list[tuple[str, str]] = []
    errors: list[str] = []
    for raw in paths:
        path = Path(raw)
        files = sorted(f for f in path.iterdir() if f.suffix in _SUFFIXES and f.is_file()) if path.is_dir() else [path]
        for f in files:
            try:
                if f.stat().st_size > MAX_FILE_BYTES:
                    errors.append(f"{f}: larger than {MAX_FILE_BYTES} bytes; split it")
                    continue
                out.append((str(f), f.read_text(encoding="utf-8")))
            except (OSError, UnicodeDecodeError) as exc:
                errors.append(f"{f}: cannot read: {exc}")
    return out, errors


def options_from_args(args: argparse.Namespace) -> ImportOptions:
    mapping = dict(DEFAULT_SEVERITY_MAP)
    for pair in filter(None, (x.strip() for x in args.severity_map.split(","))):
        src, _, dst = pair.partition("=")
        if dst not in ("critical", "major", "minor"):
            raise HubError(f"--severity-map: {pair!r}: the target must be critical, major or minor")
        mapping[src.strip().lower()] = dst
    if args.level == "workload" and not args.namespace:
        raise HubError("--namespace is required with --level workload")
    return ImportOptions(
        level=args.level,
        namespace=args.namespace if args.level == "workload" else None,
        severity_map=mapping,
        default_severity=args.default_severity,
        default_interval=parse_duration(args.default_interval, field="--default-interval"),
        receivers=tuple({"email": e} for e in args.receiver),
    )


def cmd_rules_import(args: argparse.Namespace, settings: Settings | None = None) -> int:
    options = options_from_args(args)
    texts, errors = read_rule_files(args.files)
    result = import_rule_texts(texts, options)
    result.errors[:0] = errors
    created: list[str] = []
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        for doc in result.policies:
            (out / f"{doc['name']}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    if args.apply and result.policies:
        from hub.runtime import build_hub
        from hub.settings import load_settings

        the_hub = build_hub(settings or load_settings(config_file=args.config))
        try:
            for doc in result.policies:
                try:
                    the_hub.alerting.create_policy(doc, level=options.level, namespace=options.namespace, actor="cli")
                    created.append(doc["name"])
                except HubError as exc:
                    result.errors.append(f"policy {doc['name']}: not created: {exc}")
        finally:
            the_hub.close()
    if args.json:
        body = result.to_dict()
        body["created"] = created
        print(json.dumps(body, indent=1))
    else:
        for item in result.items:
            print(item.line())
        for err in result.errors:
            print(f"error: {err}", file=sys.stderr)
        c = result.counts()
        print(
            f"{c['imported']} imported, {c['changed']} changed, {c['not_importable']} not importable, "
            f"{c['recording']} recording rule(s) reported, {c['errors']} error(s); {c['policies']} policies"
            + (f", {len(created)} created" if args.apply else "")
        )
    return 1 if result.errors else 0


def cmd_rules_export(args: argparse.Namespace, settings: Settings | None = None) -> int:
    from hub.alerts.policy import Policy
    from hub.collectors.catalogue import default_catalogue
    from hub.settings import load_settings
    from hub.store import open_state_store
    from hub.store.alerts import AlertStore

    settings = settings or load_settings(config_file=args.config)
    catalogue = default_catalogue()
    db = open_state_store(settings)
    try:
        db.migrate()
        rows = AlertStore(db).policies(level=args.level, namespaces=[args.namespace] if args.namespace else None)
        policies: list[tuple[str, Policy]] = []
        for row in rows:
            policies.append((row["id"], parse_policy(json.loads(row["document"]))))
    finally:
        db.close()

    def query(level: str, metric: str, period: float, namespace: str | None) -> str:
        return str(catalogue.alert_query(level, metric, "last", period, namespace)[0])

    text = yaml.safe_dump(export_policies(policies, query, name=args.name), sort_keys=False, allow_unicode=True)
    if args.out:
        Path(args.out).write_text(text)
        print(f"{len(policies)} policies written to {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
