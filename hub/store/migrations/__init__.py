"""One module per area, each with ``MIGRATIONS = [(1, "SQL"), (2, "SQL"), ...]``.

Never edit an applied migration: add the next number.
"""
