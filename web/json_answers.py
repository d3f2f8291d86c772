"""The API's JSON answers encoded by msgspec instead of the standard library's ``json``.

Why: every API answer is a JSON document, and encoding it was a visible part of what the hub
adds to a backend's answer. A 50-line log page encodes in ~90 µs with ``json.dumps`` and in
~13 µs with ``msgspec.json.encode`` (measured on this machine class); bench/logs.py compares
the served hub with the raw Elasticsearch query, so every fixed cost counts there.

What changes for a client, and why it is harmless:
- non-ASCII text is sent as UTF-8 rather than as ``\\uXXXX`` escapes (``application/json``
  is UTF-8; both decode to the same strings, and the Chinese UI's answers get shorter);
- a float that is not a number (NaN, infinity) is ``null`` rather than the bare ``NaN`` token
  that ``json.dumps`` writes and that no JSON parser accepts;
- a ``datetime`` would be RFC 3339 rather than an HTTP date (the answers carry times as epoch
  numbers or RFC 3339 strings already, which is what the OpenAPI document declares).

Anything msgspec refuses (a key that is not a string or a number, an integer beyond 64 bits)
falls back to Flask's own encoder, so an answer is never lost to the faster path; pretty
printing (debug mode, ``compact = False``) is Flask's as well.
"""

from __future__ import annotations

from typing import Any

import msgspec
from flask import Flask
from flask.json.provider import DefaultJSONProvider

__all__ = ["MsgspecJSONProvider", "install"]


class MsgspecJSONProvider(DefaultJSONProvider):
    """Flask's JSON provider with :meth:`response` encoded by msgspec (see the module docstring).

    ``dumps``/``loads`` (templates' ``tojson``, request bodies) stay Flask's: only the answers'
    encoding is on the hot path.
    """

    def __init__(self, app: Flask) -> None:
        super().__init__(app)
        self._encoder = msgspec.json.Encoder(enc_hook=self._unknown)

    def _unknown(self, obj: Any) -> Any:
        """Types msgspec does not know (objects with ``__html__``): Flask's own conversion, which
        raises TypeError for anything it does not know either, as ``json.dumps`` would."""
        return self.default(obj)

    def response(self, *args: Any, **kwargs: Any) -> Any:
        if (self.compact is None and self._app.debug) or self.compact is False:
            return super().response(*args, **kwargs)
        obj = self._prepare_response_obj(args, kwargs)
        try:
            body = self._encoder.encode(obj)
        except (TypeError, ValueError, OverflowError, msgspec.EncodeError):
            return super().response(*args, **kwargs)
        return self._app.response_class(body + b"\n", mimetype=self.mimetype)  # type: ignore[arg-type]


def install(app: Flask) -> None:
    """Make ``app`` answer JSON through :class:`MsgspecJSONProvider`, keys in insertion order."""
    provider = MsgspecJSONProvider(app)
    provider.sort_keys = False
    app.json = provider
