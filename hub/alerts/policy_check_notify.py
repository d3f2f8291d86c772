"""Validating whom a policy tells and how often: the notification section (receivers by email,
user, webhook or Alertmanager URL, quiet hours, send window, grouping), the per-severity repeat
schedule and flap damping. Pure; hub user names come in as a collection.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any
from urllib.parse import urlsplit

from hub.alerts.policy_checker import _Check
from hub.alerts.policy_model import (
    _CLOCK,
    _EMAIL,
    LANGUAGES,
    MAX_RECEIVERS,
    MAX_SENDS,
    RECEIVER_KINDS,
    REPEAT_MODES,
    SEVERITIES,
    FlapDamping,
    Notification,
    Receiver,
    RepeatRule,
    TimeWindow,
)
from hub.alerts.policy_yaml import _r


def _parse_window(
    c: _Check, value: Any, path: str, *, with_timezone: bool, default_tz: str = "UTC"
) -> TimeWindow | None:
    fields = ("start", "end", "timezone") if with_timezone else ("start", "end")
    w = c.mapping(value, path, fields)
    if not w:
        return None
    start = c.clock(w.get("start"), f"{path}.start")
    end = c.clock(w.get("end"), f"{path}.end")
    if "start" in w and "end" in w and start == end and _CLOCK.match(str(w.get("start")).strip()):
        c.add(f"{path}.end", "equals the start; a window needs a length (omit the window to allow the whole day)")
    tz = c.timezone(w.get("timezone"), f"{path}.timezone", default=default_tz) if with_timezone else default_tz
    return TimeWindow(start=start, end=end, timezone=tz)


MAX_URL_CHARS = 2000


def _http_url_problem(url: str) -> str | None:
    """Why ``url`` cannot be an HTTP receiver's address, or None. No credentials in the URL: they
    would be shown back with the policy (a webhook's secret is the write-only ``secret``)."""
    if not url:
        return "must not be empty"
    if len(url) > MAX_URL_CHARS:
        return f"is longer than {MAX_URL_CHARS} characters"
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        return "must not contain spaces or control characters"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        return f"is not a URL ({exc})"
    if parts.scheme not in ("http", "https"):
        return f"{_r(url)} is not an http:// or https:// URL"
    if not parts.hostname:
        return f"{_r(url)} names no host"
    if parts.username is not None or parts.password is not None:
        return "must not carry a user or password (a webhook's secret goes in its secret field)"
    if parts.fragment:
        return "must not have a #fragment"
    return None


def _parse_notification(c: _Check, value: Any, users: Collection[str] | None) -> Notification:
    n = c.mapping(value, "notification", ("receivers", "window", "send_resolved", "language", "group_by"))
    receivers: list[Receiver] = []
    seen: set[str] = set()
    for i, raw in enumerate(c.seq(n.get("receivers"), "notification.receivers", limit=MAX_RECEIVERS)):
        path = f"notification.receivers[{i}]"
        if isinstance(raw, str):
            raw = {"email": raw} if "@" in raw else {"user": raw}
        r = c.mapping(
            raw,
            path,
            (*RECEIVER_KINDS, "secret", "secret_set", "timeout", "timezone", "quiet_hours", "language"),
        )
        if not r:
            if isinstance(raw, dict):
                c.add(path, "needs an email, a user, a webhook or an alertmanager")
            continue
        given = [k for k in RECEIVER_KINDS if r.get(k) is not None]
        if len(given) != 1:
            c.add(path, "give exactly one of email, user, webhook or alertmanager")
            continue
        rec_email: str | None = None
        rec_user: str | None = None
        rec_url: dict[str, str] = {}
        secret: str | None = None
        timeout: float | None = None
        email, user = r.get("email"), r.get("user")
        if email is not None:
            rec_email = c.string(email, f"{path}.email").strip()
            if rec_email and not _EMAIL.match(rec_email):
                c.add(f"{path}.email", f"{_r(rec_email)} is not an email address")
        elif user is not None:
            rec_user = c.string(user, f"{path}.user").strip()
            if rec_user and users is not None and rec_user not in users:
                c.add(f"{path}.user", f"unknown user {_r(rec_user)}, or one who may not see these alerts")
        else:
            kind = given[0]
            url = c.string(r.get(kind), f"{path}.{kind}").strip()
            why = _http_url_problem(url)
            if why:
                c.add(f"{path}.{kind}", why)
            rec_url[kind] = url
            if r.get("timeout") is not None:
                timeout = c.duration(r.get("timeout"), f"{path}.timeout")
                if timeout is not None and not 1 <= timeout <= 60:
                    c.add(f"{path}.timeout", "must be 1s..60s")
        if r.get("secret") is not None:
            if not r.get("webhook"):
                c.add(f"{path}.secret", "only a webhook receiver has a secret (it signs the body)")
            else:
                secret = c.string(r.get("secret"), f"{path}.secret")
                if secret and not 16 <= len(secret) <= 256:
                    c.add(f"{path}.secret", "must be 16..256 characters (or empty to remove it)")
                if any(ch in secret for ch in "\r\n\0"):
                    c.add(f"{path}.secret", "must not contain line breaks or NUL")
        if r.get("timeout") is not None and not rec_url:
            c.add(f"{path}.timeout", "only webhook and alertmanager receivers have a timeout")
        tz = c.timezone(r.get("timezone"), f"{path}.timezone", default="") if r.get("timezone") is not None else None
        quiet = None
        if r.get("quiet_hours") is not None:
            quiet = _parse_window(
                c, r.get("quiet_hours"), f"{path}.quiet_hours", with_timezone=False, default_tz=tz or "UTC"
            )
        lang = c.choice(r.get("language"), f"{path}.language", LANGUAGES) if r.get("language") is not None else None
        rec = Receiver(
            email=rec_email,
            user=rec_user,
            timezone=tz or None,
            quiet_hours=quiet,
            language=lang,
            webhook=rec_url.get("webhook"),
            alertmanager=rec_url.get("alertmanager"),
            secret=secret,
            timeout=timeout,
        )
        if rec.key in seen:
            c.add(path, f"{_r(rec.key.split(':', 1)[1])} is listed twice")
        seen.add(rec.key)
        receivers.append(rec)
    window = (
        _parse_window(c, n.get("window"), "notification.window", with_timezone=True)
        if n.get("window") is not None
        else None
    )
    send_resolved = c.boolean(n.get("send_resolved"), "notification.send_resolved", default=True)
    language = (
        c.choice(n.get("language"), "notification.language", LANGUAGES) if n.get("language") is not None else None
    )
    group_by: tuple[str, ...] | None = None
    if n.get("group_by") is not None:
        names: list[str] = []
        for i, raw in enumerate(c.seq(n.get("group_by"), "notification.group_by", limit=MAX_GROUP_BY)):
            if not isinstance(raw, str) or not _LABEL_NAME.fullmatch(raw):
                c.add(f"notification.group_by[{i}]", "must be a label name (letters, digits and _, not a digit first)")
            elif raw not in names:
                names.append(raw)
        group_by = tuple(names)
    return Notification(
        receivers=tuple(receivers), window=window, send_resolved=send_resolved, language=language, group_by=group_by
    )


MAX_GROUP_BY = 10
_LABEL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")


def _parse_repeat(c: _Check, value: Any) -> tuple[tuple[str, RepeatRule], ...]:
    rep = c.mapping(value, "repeat", SEVERITIES)
    out: list[tuple[str, RepeatRule]] = []
    for sev in SEVERITIES:
        if sev not in rep:
            continue
        path = f"repeat.{sev}"
        raw = rep[sev]
        if isinstance(raw, str):
            raw = {"mode": raw}
        r = c.mapping(raw, path, ("mode", "interval", "max_sends", "max_interval"))
        mode = c.choice(r.get("mode"), f"{path}.mode", REPEAT_MODES, default="none")
        if mode == "none":
            for extra in ("interval", "max_sends", "max_interval"):
                if r.get(extra) is not None:
                    c.add(f"{path}.{extra}", "has no effect with mode none (nothing is repeated)")
            out.append((sev, RepeatRule()))
            continue
        interval = c.duration(r.get("interval"), f"{path}.interval", required=True, default=300.0)
        if r.get("interval") is not None and interval < 60:
            c.add(f"{path}.interval", "must be at least 1m; faster repeats are a mail storm")
        max_sends = c.integer(r.get("max_sends"), f"{path}.max_sends", low=1, high=MAX_SENDS, default=10)
        max_interval = None
        if r.get("max_interval") is not None:
            if mode != "exponential":
                c.add(f"{path}.max_interval", "only applies to mode exponential")
            max_interval = c.duration(r.get("max_interval"), f"{path}.max_interval")
            if max_interval and max_interval < interval:
                c.add(f"{path}.max_interval", "must not be shorter than interval")
        out.append((sev, RepeatRule(mode=mode, interval=interval, max_sends=max_sends, max_interval=max_interval)))
    return tuple(out)


def _parse_flap(c: _Check, value: Any) -> FlapDamping:
    if value is False:
        return FlapDamping(enabled=False)
    f = c.mapping(value, "flap", ("enabled", "changes", "window"))
    enabled = c.boolean(f.get("enabled"), "flap.enabled", default=True)
    changes = c.integer(f.get("changes"), "flap.changes", low=2, high=1000, default=FlapDamping.changes)
    window = c.duration(f.get("window"), "flap.window", default=FlapDamping.window)
    if f.get("window") is not None and window < 60:
        c.add("flap.window", "must be at least 1m")
    return FlapDamping(enabled=enabled, changes=changes, window=window)
