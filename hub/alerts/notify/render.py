"""Turns a message's notices into an email: subject, plain text, HTML and inline charts.

Subjects are written for a phone's mail list, most telling words first:
``[FIRING·critical] node-1 cpu-high 97.0% (>90%)``. Bodies carry the evidence an on-call
engineer needs to act without opening anything: policy, rule, entity, severity, the query,
value against threshold, first and last breach, how many periods, the evaluated samples
(and a chart of them), a console link, and the newest log lines of the workload or node up to
the notice (errors first; evidence.py) when the hub has a log store.

Templates (Jinja2) live in ``templates/<language>/``; English and Chinese ship.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2

from hub.alerts.engine import COMPARE
from hub.alerts.notify import evidence
from hub.alerts.notify.chart import sparkline
from hub.alerts.notify.notice import Notice, format_threshold, format_value, short_entity
from hub.scope import split_key
from hub.timeutil import format_duration

log = logging.getLogger("kubehub.alerts")

LogLines = Callable[..., Sequence[Mapping[str, Any]]]

TEMPLATES = Path(__file__).parent / "templates"
MAX_CHARTS = 5  # charts per email: enough for a grouped message, small enough for any client
MAX_LOG_NOTICES = 3
MAX_LOG_LINES = 20

WORDS: dict[str, dict[str, Any]] = {
    "en": {
        "kind": {
            "firing": "FIRING",
            "repeat": "STILL FIRING",
            "resolved": "RESOLVED",
            "nodata": "NO DATA",
            "closed": "CLOSED",
            "flap_summary": "FLAPPING",
        },
        "severity": {"critical": "critical", "major": "major", "minor": "minor"},
        "was": "was",
        "alerts": "alerts",
        "digest": "DIGEST",
        "digest_subject": "{n} notices held by the hourly quota of {tenant}",
        "flapped": "changed state {n} times",
    },
    "zh": {
        "kind": {
            "firing": "告警",
            "repeat": "持续告警",
            "resolved": "已恢复",
            "nodata": "无数据",
            "closed": "已关闭",
            "flap_summary": "状态抖动",
        },
        "severity": {"critical": "严重", "major": "重要", "minor": "次要"},
        "was": "原阈值",
        "alerts": "条告警",
        "digest": "汇总",
        "digest_subject": "{tenant} 超出每小时通知配额，汇总 {n} 条通知",
        "flapped": "状态变化 {n} 次",
    },
}

_SEVERITY_RANK = {"critical": 0, "major": 1, "minor": 2}
_KIND_RANK = {"firing": 0, "nodata": 1, "repeat": 2, "flap_summary": 3, "closed": 4, "resolved": 5}


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str
    images: tuple[tuple[str, bytes], ...] = ()


def when(t: float | None) -> str:
    if t is None:
        return "-"
    return datetime.fromtimestamp(t, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def clock(t: float) -> str:
    return datetime.fromtimestamp(t, tz=UTC).strftime("%H:%M:%S")


def _breaches(n: Notice, value: float | None) -> bool:
    if value is None:
        return False
    return bool(COMPARE[n.comparator](value, n.threshold_base))


def _clip(text: str, size: int) -> str:
    return text if len(text) <= size else text[: size - 1] + "…"


class Renderer:
    def __init__(
        self,
        *,
        public_url: str,
        log_lines: LogLines | None = None,
        cluster: str = "",
        several_clusters: Callable[[], bool] | None = None,
    ) -> None:
        self.public_url = public_url.rstrip("/")
        self.log_lines = log_lines
        # Several clusters: every notice names its cluster (subject and body); ``cluster`` is the
        # implicit cluster's name. A single-cluster hub's messages stay as they were.
        self.cluster = cluster
        self.several_clusters = several_clusters
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(TEMPLATES)),
            autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default_for_string=False),
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
            undefined=jinja2.StrictUndefined,
            # The templates ship with the code: no stat of both files for every message rendered.
            auto_reload=False,
        )

    # -- subject ------------------------------------------------------------------------------
    def subject(self, notices: Sequence[Notice], language: str, *, reason: str = "") -> str:
        w = WORDS.get(language, WORDS["en"])
        if reason == "quota":
            tenant = notices[0].tenant if notices else ""
            return f"[{w['digest']}] " + w["digest_subject"].format(n=len(notices), tenant=tenant)
        ranked = sorted(notices, key=lambda n: (_KIND_RANK.get(n.kind, 9), _SEVERITY_RANK.get(n.severity, 9)))
        lead = ranked[0]
        tag = f"[{w['kind'][lead.kind]}·{w['severity'][lead.severity]}]"
        if lead.kind in ("resolved", "closed"):
            tag = f"[{w['kind'][lead.kind]}]"
        clusters = list(dict.fromkeys(c for c in map(self._cluster_of, ranked) if c))
        if clusters:  # several clusters: which one, right after the state (what a phone shows)
            tag += f" [{', '.join(clusters[:2])}{f' +{len(clusters) - 2}' if len(clusters) > 2 else ''}]"
        if len(notices) > 1:
            names = []
            for n in ranked:  # the most pressing first: that is what a phone shows
                s = short_entity(n)
                if s not in names:
                    names.append(s)
            shown = ", ".join(_clip(x, 24) for x in names[:2]) + (f" +{len(names) - 2}" if len(names) > 2 else "")
            policies = list(dict.fromkeys(n.policy_name for n in ranked))
            if len(policies) > 1:  # a group across policies (grouping.py): the entities lead, then the policies
                named = ", ".join(_clip(x, 24) for x in policies[:2])
                named += f" +{len(policies) - 2}" if len(policies) > 2 else ""
                return f"{tag} {shown}: {len(notices)} {w['alerts']} ({named})"
            return f"{tag} {lead.policy_name}: {len(notices)} {w['alerts']} ({shown})"
        ent = _clip(short_entity(lead), 40)
        # Value and threshold in the same human form (1.77 cores vs 1.31 cores), not the value
        # in one unit and the threshold in the one the policy author typed.
        thr = f"{lead.comparator}{format_value(lead.threshold_base, lead.unit)}"
        if lead.comparator == "present":  # a PromQL rule: the comparison is inside its expression
            thr = "PromQL"
        if lead.kind == "flap_summary":
            return f"{tag} {ent} {lead.rule}: {w['flapped'].format(n=lead.detail.get('changes', '?'))}"
        if lead.kind == "nodata":
            return f"{tag} {ent} {lead.rule}"
        value = format_value(lead.value, lead.unit)
        if lead.kind in ("resolved", "closed"):
            return f"{tag} {ent} {lead.rule} {value} ({w['was']} {thr})"
        return f"{tag} {ent} {lead.rule} {value} ({thr})"

    # -- body ---------------------------------------------------------------------------------
    def _logs(self, n: Notice) -> list[Mapping[str, Any]]:
        """The evidence lines (hub/alerts/notify/evidence.py has the rule): the newest up to the
        notice time within the breach span (a repeat: since the previous send), errors and
        warnings first, of the alert's own workload (kind too) or node."""
        subject = evidence.subject_of(n)
        if self.log_lines is None or subject is None:
            return []
        start, end = evidence.window(n)
        try:
            found = self.log_lines(**subject, start=start, end=end, limit=MAX_LOG_LINES)
            return evidence.pick(found, MAX_LOG_LINES)
        except Exception as exc:  # evidence is best-effort: a log store outage must not block the alert
            log.warning("log lines for %s unavailable: %s", n.alert_id, exc)
            return []

    def _item(self, n: Notice, index: int, with_chart: bool, with_logs: bool) -> tuple[dict[str, Any], bytes | None]:
        over = [_breaches(n, v) for _, v in n.samples]
        samples = [
            {"time": clock(t), "value": format_value(v, n.unit), "over": o}
            for (t, v), o in zip(n.samples, over, strict=True)
        ]
        chart = None
        cid = ""
        if with_chart and len(n.samples) >= 2:
            chart = sparkline(n.samples, n.threshold_base, breaching=over)
            cid = f"chart{index}@kubehub"
        item = {
            "n": n,
            "kind": n.kind,
            "entity": n.entity,
            "short_entity": short_entity(n),
            "value": format_value(n.value, n.unit),
            "threshold": f"{n.comparator} {format_value(n.threshold_base, n.unit)}"
            if n.comparator != "present"
            else "PromQL",
            "threshold_written": f"{n.comparator} {format_threshold(n.threshold, n.unit)}",
            "summary": str(n.detail.get("summary") or ""),
            "description": str(n.detail.get("description") or ""),
            "period": format_duration(n.period),
            "started": when(n.started_at),
            "fired": when(n.fired_at),
            "ended": when(n.ended_at),
            "last_breach": when(n.last_breach),
            "at": when(n.at),
            "samples": samples,
            "cid": cid,
            "console": f"{self.public_url}/alerting/alerts/{n.alert_id}",
            "logs": self._logs(n) if with_logs else [],
            "labels": sorted(n.labels.items()),
            "cluster": self._cluster_of(n),
        }
        return item, chart

    def _cluster_of(self, n: Notice) -> str:
        """The cluster a notice is about ('' in a single-cluster hub): the alert's own ``cluster``
        label (the meta-alert of a lost cluster), the cluster of its project's key, or the
        implicit cluster."""
        if self.several_clusters is None or not self.several_clusters():
            return ""
        return n.labels.get("cluster") or split_key(n.namespace or "")[0] or self.cluster

    def render(
        self, notices: Sequence[Notice], *, language: str = "en", reason: str = "", resent: bool = False
    ) -> Rendered:
        language = language if language in WORDS else "en"
        w = WORDS[language]
        digest = reason == "quota"
        items: list[dict[str, Any]] = []
        images: list[tuple[str, bytes]] = []
        logs_left = MAX_LOG_NOTICES
        for i, n in enumerate(notices):
            with_logs = not digest and logs_left > 0 and n.kind in ("firing", "repeat")
            item, chart = self._item(n, i, with_chart=not digest and i < MAX_CHARTS, with_logs=with_logs)
            if with_logs:
                logs_left -= 1
            if chart is not None:
                images.append((item["cid"], chart))
            items.append(item)
        subject = self.subject(notices, language, reason=reason)
        ctx: dict[str, Any] = {
            "items": items,
            "digest": digest,
            "held": reason in ("window", "quiet"),
            "reason": reason,
            "resent": resent,
            "words": w,
            "console": self.public_url,
            "subject": subject,
        }
        text = self.env.get_template(f"{language}/message.txt.j2").render(ctx)
        html = self.env.get_template(f"{language}/message.html.j2").render(ctx)
        return Rendered(subject=subject, text=text, html=html, images=tuple(images))
