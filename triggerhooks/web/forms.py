"""Reading what an action form sends: a bounded URL-encoded body, and JSON objects typed
into it."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request

from .auth import Refused

__all__ = ["MAX_FIELDS", "MAX_FORM_BYTES", "json_object", "read_form"]

MAX_FORM_BYTES = 4 * 1024 * 1024
"""The largest form body read (the kwargs of a replay included); a larger one is refused."""
MAX_FIELDS = 20


async def read_form(request: Request) -> dict[str, str]:
    """The fields of a URL-encoded form (the first value of each), read up to
    :data:`MAX_FORM_BYTES`: a larger body is refused before it is all read."""
    kind = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise Refused(415, "send the form URL-encoded (application/x-www-form-urlencoded)")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_FORM_BYTES:
        raise Refused(413, f"the form is larger than {MAX_FORM_BYTES:,} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise Refused(413, f"the form is larger than {MAX_FORM_BYTES:,} bytes")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True,
                          max_num_fields=MAX_FIELDS, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        raise Refused(400, "the form is not URL-encoded UTF-8 text of a few fields") from None
    fields: dict[str, str] = {}
    for name, value in pairs:
        fields.setdefault(name, value)
    return fields


def json_object(text: str, what: str) -> dict[str, Any] | None:
    """The JSON object typed as ``what``, or ``None`` for an empty field."""
    if not text.strip():
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise Refused(400, f"{what}: not valid JSON ({exc})") from None
    except (RecursionError, ValueError):
        raise Refused(400, f"{what}: JSON nested too deeply or too large a number") from None
    if not isinstance(value, dict):
        raise Refused(400, f"{what}: must be a JSON object, not {type(value).__name__}")
    return value
