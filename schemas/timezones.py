"""The billing time zones the contract accepts, and the one place they are loaded from.

Validity and offsets come from the `tzdata` package the project ships (a pinned dependency), never
from the host's zone directory: a name is valid on every machine or on none, and an instant falls
on the same local date everywhere. The host's `localtime`, the `posix/` and `right/` trees (the
latter counts leap seconds, which moves local midnights) and whatever else a machine has on disk
are therefore refused, as is tzdata's `Factory` placeholder.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Final
from zoneinfo import ZoneInfo

_PLACEHOLDERS = frozenset({"Factory"})


def _shipped_names() -> frozenset[str]:
    text = resources.files("tzdata").joinpath("zones").read_text(encoding="utf-8")
    return frozenset(n for n in text.split() if n not in _PLACEHOLDERS)


ZONE_NAMES: Final[frozenset[str]] = _shipped_names()


def zone_problem(name: str) -> str | None:
    """Why `name` is not a billing zone (the text a publisher is told), or None when it is one."""
    if name in ZONE_NAMES:
        return None
    if name == "localtime" or name.startswith(("posix/", "right/", "/")) or name == "posixrules":
        return (
            f"time zone {name!r} is a host alias, not a canonical IANA name; use a name such as "
            "'Europe/Amsterdam' (localtime, posix/ and right/ are refused)"
        )
    return f"unknown IANA time zone {name!r}"


@cache
def load_zone(name: str) -> ZoneInfo:
    """The zone `name` from the shipped tzdata (ValueError when it is not a billing zone)."""
    problem = zone_problem(name)
    if problem is not None:
        raise ValueError(problem)
    with resources.files("tzdata.zoneinfo").joinpath(*name.split("/")).open("rb") as fp:
        return ZoneInfo.from_file(fp, key=name)
