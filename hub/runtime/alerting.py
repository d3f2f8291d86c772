"""Builds the alerting area's services into the hub."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hub.runtime import Hub


def build(hub: Hub) -> None:
    """Nothing yet: the alerting issue fills this in."""
