"""Metric tables of the catalogue, one module per level (``hub/collectors/catalogue.py`` assembles them)."""
