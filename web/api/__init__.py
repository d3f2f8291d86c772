"""JSON API blueprints, one module per area, all under /api/v1."""
