"""The outbox's delivery bookkeeping, apart from the mark that a message was sent.

When the mail server accepts a message the outbox commits only that (``status='sent'``, on its
own and at once: the time between the server's answer and this commit is the window in which a
crash re-sends the message). The bookkeeping that follows — the notices marked delivered, each
alert's ``sends`` — is a second transaction; ``counted`` says whether it ran, so a leader that
died in between leaves rows with ``counted = 0`` that the next delivery round (on any leader)
completes. Existing rows were counted in the same transaction as their mark: 1.
"""

MIGRATIONS = [
    (
        1,
        """
        ALTER TABLE alert_outbox ADD COLUMN counted INTEGER NOT NULL DEFAULT 1;
        CREATE INDEX alert_outbox_uncounted ON alert_outbox (counted) WHERE counted = 0;
        """,
    ),
]
