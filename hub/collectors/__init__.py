"""Adapters and catalogues that read the cluster, Prometheus and the log stores."""
