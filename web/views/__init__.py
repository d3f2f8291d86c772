"""Server-rendered console pages (HTML), over the same hub services as the JSON API."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template_string

bp = Blueprint("views", __name__)

_ERROR_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>{{ status }} · kubehub</title></head>
<body><main><h1>{{ status }}</h1><p>{{ message }}</p><p><a href="/">kubehub</a></p></main></body></html>"""


def render_error(status: int, message: str) -> Any:
    return render_template_string(_ERROR_PAGE, status=status, message=message), status
