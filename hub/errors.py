"""The hub's error tree.

Adapters translate vendor errors into these (chaining the original as ``__cause__``) so that
the web layer can map every failure to a clear status code and a one-sentence message without
knowing which library raised it.
"""

from __future__ import annotations


class HubError(Exception):
    """Base of every error the hub raises on purpose.

    ``status`` is the HTTP status the web layer answers with; ``field`` names the input at
    fault (a JSON path such as ``rules[2].threshold``) when one is.
    """

    status = 500

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def to_dict(self) -> dict[str, str]:
        body = {"error": self.message}
        if self.field:
            body["field"] = self.field
        return body


class InvalidInput(HubError):
    """The request itself is malformed (bad syntax, wrong type)."""

    status = 400


class Unprocessable(HubError):
    """The request is well formed but its content cannot be accepted (422)."""

    status = 422


class Unauthenticated(HubError):
    status = 401


class Forbidden(HubError):
    status = 403


class NotFound(HubError):
    status = 404


class Conflict(HubError):
    status = 409


class TooManyRequests(HubError):
    status = 429


class RateLimited(TooManyRequests):
    """A rate limit refused the request (429); the web layer sends ``Retry-After: <seconds>``.

    ``retry_after`` is whole seconds, at least 1 (a client told "0" would retry at once).
    """

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = self.seconds(retry_after)

    @staticmethod
    def seconds(wait: float) -> int:
        return max(1, -int(-wait // 1))  # rounded up: retrying after the floor would be refused again


class BackendUnavailable(HubError):
    """A backend the request needs did not answer; ``backend`` names it for the user."""

    status = 503

    def __init__(self, backend: str, message: str) -> None:
        super().__init__(f"{backend} is unavailable: {message}")
        self.backend = backend

    def to_dict(self) -> dict[str, str]:
        body = super().to_dict()
        body["backend"] = self.backend
        return body


class StillComputing(BackendUnavailable):
    """A computation longer than the caller's wait (a window ranking's first table at scale) goes
    on in the background and its answer is kept for the next caller. The API answers it like any
    503; the console shows it as work under way and reloads, since nothing is down."""


class ConfigError(HubError):
    """A setting is wrong; the message names the setting (``KUBEHUB_...``)."""

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(f"{setting}: {message}", field=setting)
        self.setting = setting
