"""kubehub: a Kubernetes observability and alerting hub.

The package is layered (see docs/architecture.md and the import-linter contracts in
pyproject.toml): ``web`` -> ``hub.runtime`` -> ``hub.{alerts,collectors,tenancy}`` ->
``hub.store`` -> ``hub.{model,errors,settings}``.
"""

__version__ = "0.1.0"
