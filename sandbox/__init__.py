"""A local real stack for kubehub's tests and quickstart (``kubehub sandbox up``).

A real kube-apiserver with etcd, controller-manager and scheduler, KWOK playing nodes and pods,
kube-state-metrics, Prometheus with 24 h of backfilled history, Elasticsearch, an SMTP catcher and
the hub itself, all as local processes under one directory. See docs/sandbox.md.
"""

from sandbox.core import Sandbox
from sandbox.procs import ComponentError

__all__ = ["ComponentError", "Sandbox"]
