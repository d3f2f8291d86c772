"""Pure views over the cluster: API JSON -> domain objects, and what the console derives from them.

Nothing here does I/O or imports the Kubernetes client; the watch cache feeds it plain dicts as
the API server sent them (``kubernetes.py``), and the unit tests feed it dicts written by hand.
Derived views (workload -> pods, pod -> node, workload health, node allocation, revisions) take
lookups as arguments, so the cache can answer them from its indexes without copying.

This module is the one import for all of it; the code sits in ``inventory_parse`` (API JSON ->
objects), ``inventory_views`` (derived views and API dicts) and ``inventory_paging`` (label
selectors, list queries, pages).
"""

from __future__ import annotations

from hub.collectors.inventory_paging import (
    ListQuery,
    Matcher,
    Page,
    T,
    decode_continue,
    encode_continue,
    encode_json,
    parse_label_selector,
    select,
    selector_matches,
)
from hub.collectors.inventory_parse import (
    WORKLOAD_KINDS,
    Json,
    config_meta_from_api,
    cpu_millis,
    effective_requests,
    event_from_api,
    memory_bytes,
    namespace_from_api,
    node_from_api,
    parse_quantity,
    parse_timestamp,
    pod_from_api,
    service_from_api,
    workload_from_api,
)
from hub.collectors.inventory_views import (
    deployment_revisions,
    node_allocation,
    node_list_item,
    node_problems,
    node_to_dict,
    pod_to_dict,
    pods_of_workload,
    top_owner,
    workload_health,
    workload_to_dict,
)

__all__ = [
    "WORKLOAD_KINDS",
    "Json",
    "ListQuery",
    "Matcher",
    "Page",
    "T",
    "config_meta_from_api",
    "cpu_millis",
    "decode_continue",
    "deployment_revisions",
    "effective_requests",
    "encode_continue",
    "encode_json",
    "event_from_api",
    "memory_bytes",
    "namespace_from_api",
    "node_allocation",
    "node_from_api",
    "node_list_item",
    "node_problems",
    "node_to_dict",
    "parse_label_selector",
    "parse_quantity",
    "parse_timestamp",
    "pod_from_api",
    "pod_to_dict",
    "pods_of_workload",
    "select",
    "selector_matches",
    "service_from_api",
    "top_owner",
    "workload_from_api",
    "workload_health",
    "workload_to_dict",
]
