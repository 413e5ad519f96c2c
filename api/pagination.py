"""Cursor pagination: a page is the rows after a position in a stable order (user_id).

The cursor is that position, base64url-encoded, opaque to clients: pass back the `next_cursor` of a
page to get the next one; a new filter starts from no cursor.
"""

from __future__ import annotations

import base64
import binascii

from api.problems import ApiProblem

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


def encode(after: str | None) -> str | None:
    return None if after is None else base64.urlsafe_b64encode(after.encode()).decode().rstrip("=")


def decode(cursor: str | None) -> str | None:
    """The position a cursor names; 400 (bad-request) for one this API did not make."""
    if not cursor:
        return None
    try:
        return base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ApiProblem("bad-request", f"invalid cursor {cursor!r}: pass back a next_cursor of this API") from None
