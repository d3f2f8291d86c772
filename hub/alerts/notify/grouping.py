"""Stage: grouping across policies (Alertmanager-style ``group_by``, ``group_wait``,
``group_interval``).

Why: one failing node trips several node policies, and routing alone makes one message per
policy and receiver. This stage re-cuts the routed messages of a cycle per receiver and
*group* — the notice's tenant plus the values of its ``group_by`` labels (by default ``node``
for node policies, ``namespace`` + ``workload`` for workload policies, nothing more for
cluster policies) — so the five policies of one sick node make ONE message listing five
alerts, each with its own evidence.

Timing, per (receiver, group), from the group's last planned release ``flush_at``:

- a message still waiting to leave (``flush_at`` later than now) takes the new notices (the
  store merges them into the waiting row, which is keyed by the release time);
- otherwise the next release is ``max(now + wait, flush_at + interval)``: a new group waits
  ``group_wait`` so changes that arrive over a few cycles travel together, and a group that
  was just told waits ``group_interval`` before its next update. Unlike Alertmanager, a group
  idle for longer than the interval is told ``group_wait`` after the change, not on a fixed
  tick: an update is never held longer than needed, and resolves spread over a few cycles
  still travel together.

What is never grouped: notices of different tenants (the tenant is part of the group, so a
project's notices never share a message with another project's or the cluster's), messages to
different receivers, quota digests (already one per receiver and hour), and Alertmanager
receivers (Alertmanager groups by itself; it gets every change at once, as it expects).
Messages held by a window or quiet hours keep their release time and are grouped among
themselves (same receiver, group and release).

Pure: the group states are passed in and the changed ones returned, with the clock as ``now``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from hub.alerts.notify.notice import Notice
from hub.alerts.notify.window import MessagePlan

# The labels a level's notices are grouped by when the settings name none.
DEFAULT_GROUP_BY: Mapping[str, tuple[str, ...]] = {
    "node": ("node",),
    "workload": ("namespace", "workload"),
    "cluster": (),
}
# Labels whose absence is filled from the notice's entity (a node's entity is its name).
_ENTITY_LABELS = {"node", "workload"}
UNGROUPED_SCHEMES = ("alertmanager",)

GroupKey = tuple[str, str]  # (recipient, group id)


@dataclass(frozen=True)
class GroupSettings:
    """``enabled`` off restores one message per policy and receiver, sent at once."""

    enabled: bool = True
    wait: float = 30.0
    interval: float = 60.0
    group_by: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: dict(DEFAULT_GROUP_BY))
    # policy id -> the policy's own ``notification.group_by`` (over the level's default)
    per_policy: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class GroupState:
    """What must survive a restart or a change of leader: when the group's latest message is
    (or was) released, and what the group is, for the console and the store."""

    recipient: str
    group_id: str
    tenant: str
    labels: Mapping[str, str]
    flush_at: float


@dataclass
class Grouped:
    messages: list[MessagePlan]
    states: dict[GroupKey, GroupState] = field(default_factory=dict)  # changed or new
    expired: list[GroupKey] = field(default_factory=list)


def parse_group_by(text: str) -> dict[str, tuple[str, ...]]:
    """``node=node;workload=namespace,workload`` -> per level label names, over the defaults.
    ValueError names what is wrong (the settings loader reports it)."""
    out = dict(DEFAULT_GROUP_BY)
    for part in filter(None, (p.strip() for p in text.split(";"))):
        level, sep, names = part.partition("=")
        level = level.strip()
        if not sep or level not in DEFAULT_GROUP_BY:
            raise ValueError(f"{part!r} is not <level>=<label>,... with level node, workload or cluster")
        out[level] = tuple(n.strip() for n in names.split(",") if n.strip())
    return out


def group_labels(n: Notice, settings: GroupSettings) -> dict[str, str]:
    """The group's labels of a notice: its tenant and level, and its ``group_by`` values (the
    policy's own, else its level's; ``policy`` stands for the policy itself, so
    ``group_by: [policy]`` keeps a policy's notices to themselves)."""
    names = settings.per_policy.get(n.policy_id)
    if names is None:
        names = settings.group_by.get(n.level, DEFAULT_GROUP_BY.get(n.level, ()))
    out = {"tenant": n.tenant, "level": n.level}
    for name in names:
        if name in out:  # never overwritten: a group_by cannot widen a group past its tenant
            continue
        value = n.policy_id if name == "policy" else n.labels.get(name, "")
        if not value and name in _ENTITY_LABELS:
            value = n.entity
        if not value and name == "namespace":
            value = n.namespace or ""
        out[name] = value
    return out


def group_id(labels: Mapping[str, str]) -> str:
    text = "\n".join(f"{k}={v}" for k, v in sorted(labels.items()))
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def _ungrouped(m: MessagePlan) -> bool:
    return m.reason == "quota" or m.recipient.split(":", 1)[0] in UNGROUPED_SCHEMES


def group(
    messages: Sequence[MessagePlan],
    notices: Mapping[str, Notice],
    *,
    states: Mapping[GroupKey, GroupState],
    settings: GroupSettings,
    now: float,
) -> Grouped:
    """The routed messages of one cycle re-cut per receiver and group, with their release
    times; the group states that changed, and those old enough to forget."""
    if not settings.enabled:
        return Grouped(messages=list(messages))
    out = Grouped(messages=[])
    # (recipient, tenant, group id, release or None for now) -> the first plan, the keys, labels
    buckets: dict[tuple[str, str, str, float | None], tuple[MessagePlan, list[str], dict[str, str]]] = {}
    for m in messages:
        if _ungrouped(m):
            out.messages.append(m)
            continue
        release = m.not_before if m.reason in ("window", "quiet") else None
        for key in m.notices:
            n = notices.get(key)
            labels = group_labels(n, settings) if n is not None else {"tenant": m.tenant, "policy": m.policy_id}
            bucket = (m.recipient, m.tenant, group_id(labels), release)  # the routed tenant, always
            found = buckets.setdefault(bucket, (m, [], labels))
            if key not in found[1]:
                found[1].append(key)
    # Each group's release; groups of one receiver and tenant released at the same instant share
    # one message (twenty hot nodes of one cycle: one email listing twenty groups, as before).
    carried: dict[tuple[str, str, float, str], tuple[MessagePlan, list[str], set[str], bool]] = {}
    for (recipient, tenant, gid, release), (first, keys, labels) in buckets.items():
        if release is not None:
            at, joins, reason = release, False, first.reason
        else:
            reason = ""
            st = states.get((recipient, gid))
            joins = st is not None and st.flush_at > now
            repeats_only = all(notices[k].kind == "repeat" for k in keys if k in notices)
            if st is not None and joins:
                at = st.flush_at
            elif repeats_only:
                # Repeats follow their severity's schedule (Alertmanager's repeat_interval), not
                # group_interval; alone, they leave now and do not move the group's pace.
                at = now
            else:
                at = now + settings.wait
                if st is not None:
                    at = max(at, st.flush_at + settings.interval)
                out.states[(recipient, gid)] = GroupState(
                    recipient=recipient, group_id=gid, tenant=tenant, labels=labels, flush_at=at
                )
        slot = carried.setdefault((recipient, tenant, at, reason), (first, [], set(), True))
        slot[1].extend(k for k in keys if k not in slot[1])
        slot[2].add(gid)
        carried[(recipient, tenant, at, reason)] = (slot[0], slot[1], slot[2], slot[3] and joins)
    for (recipient, tenant, at, reason), (first, keys, gids, joins) in carried.items():
        scope = hashlib.sha1(tenant.encode()).hexdigest()[:12]
        mkey = f"{'held-group' if reason else 'group'}:{recipient}:{scope}:{at:.3f}"
        extra = {"groups": ",".join(sorted(gids))}
        if joins:
            extra["joins"] = "1"
        out.messages.append(_plan(first, tenant, keys, mkey, at, reason, extra))
    out.expired = [k for k, st in states.items() if k not in out.states and st.flush_at + settings.interval < now]
    return out


def _plan(
    first: MessagePlan, tenant: str, keys: list[str], mkey: str, not_before: float, reason: str, extra: dict[str, str]
) -> MessagePlan:
    """A group's message; its policy is the first one's (any policy of the group names this
    receiver, which is what the webhook secret's lookup needs)."""
    return MessagePlan(
        mkey=mkey,
        tenant=tenant,
        policy_id=first.policy_id,
        recipient=first.recipient,
        language=first.language,
        notices=keys,
        not_before=not_before,
        reason=reason,
        extra=extra,
    )
