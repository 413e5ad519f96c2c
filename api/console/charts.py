"""The console's charts: Vega-Lite specs rendered to SVG on the server by vl-convert (no script in
the browser), inlined in the page.

Every chart is readable without colour: bars carry their value as text, series differ by point
shape and dash as well as colour, and reference lines are labelled in words. Axes name their unit
and dates are written out. Vega writes an `aria-label` on every mark (`day: Oct 03, 2026;
accounts: 41`), so a screen reader, and the browser tests, can read each one; each chart's marks
sit in a group of class `<name>_marks`.

Rendering costs ~150-250 ms per chart on a busy 2-core machine (the first one in a process ~1.7 s:
vl-convert starts its engine; `warm_up` does that at startup), so SVGs are cached by their spec:
the data of a complete month changes only with a new version, which makes a new spec.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from datetime import date, datetime

import orjson
import vl_convert

SCHEMA = "https://vega.github.io/schema/vega-lite/v5.json"
WIDTH = 640
_CACHE_SIZE = 256
_lock = threading.Lock()
_cache: OrderedDict[str, str] = OrderedDict()


def render(spec: dict) -> str:
    """The SVG of a Vega-Lite spec, from the cache when drawn before."""
    blob = orjson.dumps(spec, option=orjson.OPT_SORT_KEYS)
    key = hashlib.sha256(blob).hexdigest()
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
        svg = vl_convert.vegalite_to_svg(spec)  # one at a time: the engine is shared
        _cache[key] = svg
        if len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return svg


def warm_up() -> None:
    """Start vl-convert's engine (the first chart of a process pays ~1.7 s otherwise)."""
    render(bars("warm-up", [{"label": "x", "value": 1}], "label", "value", "accounts"))


def _base(name: str, title: str, height: int) -> dict:
    return {
        "$schema": SCHEMA,
        "name": name,
        "title": {"text": title, "anchor": "start"},
        "width": WIDTH,
        "height": height,
        "config": {"font": "sans-serif", "axis": {"labelFontSize": 11, "titleFontSize": 12}},
    }


def bars(title: str, rows: list[dict], label: str, value: str, unit: str, name: str = "bars") -> dict:
    """Horizontal bars, one per row in the given order, each with its value written at its end."""
    y = {"field": label, "type": "nominal", "sort": None, "title": None}
    x = {"field": value, "type": "quantitative", "title": unit, "axis": {"tickMinStep": 1, "format": ",d"}}
    spec = _base(name, title, max(60, 22 * len(rows)))
    spec["data"] = {"values": rows}
    spec["layer"] = [
        {"name": name, "mark": {"type": "bar", "color": "#3465a4"}, "encoding": {"y": y, "x": x}},
        {
            "mark": {"type": "text", "align": "left", "dx": 4},
            "encoding": {"y": y, "x": x, "text": {"field": value, "type": "quantitative", "format": ","}},
        },
    ]
    return spec


def _utc_ms(d: date | datetime) -> int:
    """A local date or wall time as epoch milliseconds read as UTC: charts show wall time, no zone."""
    if not isinstance(d, datetime):
        d = datetime(d.year, d.month, d.day)
    return int((d.replace(tzinfo=None) - datetime(1970, 1, 1)).total_seconds() * 1000)


def series(title: str, rows: list[dict], x: str, y: str, by: str, unit: str, x_title: str) -> dict:
    """One line per `by` value, told apart by point shape and dash as well as colour (one legend)."""
    legend = {"orient": "bottom", "columns": 3, "title": None}
    xy = {
        "x": {"field": x, "type": "ordinal", "title": x_title, "axis": {"labelAngle": -40}},
        "y": {"field": y, "type": "quantitative", "title": unit},
    }
    spec = _base("series", title, 260)
    spec["data"] = {"values": rows}
    spec["layer"] = [
        {"mark": "line", "encoding": xy | {"color": {"field": by, "type": "nominal", "legend": None},
                                           "strokeDash": {"field": by, "type": "nominal", "legend": None}}},
        {"name": "points", "mark": {"type": "point", "size": 70, "filled": True},
         "encoding": xy | {"color": {"field": by, "type": "nominal", "legend": legend},
                           "shape": {"field": by, "type": "nominal", "legend": legend}}},
    ]  # fmt: skip
    return spec


def daily_against_level(title: str, days: list[dict], level: int, level_text: str, unit: str) -> dict:
    """A point per day (`day`, `value`) joined by a line, and a dashed, labelled level across."""
    x = {"field": "t", "type": "temporal", "scale": {"type": "utc"}, "title": "day (company's billing zone)",
         "axis": {"format": "%b %d", "formatType": "utc", "labelAngle": -40, "tickCount": {"interval": "day", "step": 2}}}  # fmt: skip
    points = [{"t": _utc_ms(d["day"]), "day": d["day"].isoformat(), "value": d["value"]} for d in days]
    spec = _base("daily", title, 260)
    spec["layer"] = [
        {
            "name": "days",
            "data": {"values": points},
            "mark": {"type": "line", "point": {"size": 50, "filled": True}},
            "encoding": {"x": x, "y": {"field": "value", "type": "quantitative", "title": unit}},
        },
        {
            "data": {"values": [{"level": level, "text": level_text}]},
            "layer": [
                {
                    "mark": {"type": "rule", "strokeDash": [6, 4], "color": "#a40000"},
                    "encoding": {"y": {"field": "level", "type": "quantitative"}},
                },
                {
                    "mark": {"type": "text", "align": "left", "dy": -7, "x": 4, "color": "#a40000"},
                    "encoding": {"y": {"field": "level", "type": "quantitative"}, "text": {"field": "text"}},
                },
            ],
        },  # fmt: skip
    ]
    return spec


def timeline(title: str, events: list[dict], start: datetime, end: datetime) -> dict:
    """Events (`at` wall time, `type`) of [start, end] on a time axis across it, the two ends marked;
    events outside it (an account provisioned years ago) are left out."""
    x = {"field": "t", "type": "temporal", "scale": {"type": "utc", "domain": [_utc_ms(start), _utc_ms(end)]},
         "title": "time (company's billing zone)", "axis": {"format": "%b %d", "formatType": "utc", "labelAngle": -40}}  # fmt: skip
    points = [
        {"t": _utc_ms(e["at"]), "type": e["type"], "at": e["at"].isoformat(timespec="minutes")}
        for e in events
        if start <= e["at"] <= end
    ]
    marks = [
        {"t": _utc_ms(start), "text": f"day 1 ({start:%b %d})"},
        {"t": _utc_ms(end), "text": f"month end ({end:%b %d} 00:00)"},
    ]
    spec = _base("timeline", title, max(80, 36 * len({p["type"] for p in points}) + 40))
    spec["layer"] = [
        {
            "data": {"values": marks},
            "layer": [
                {"mark": {"type": "rule", "strokeDash": [6, 4], "color": "#555"}, "encoding": {"x": x}},
                {"mark": {"type": "text", "align": "left", "baseline": "top", "dx": 3, "y": 0}, "encoding": {"x": x, "text": {"field": "text"}}},
            ],
        },
        {
            "name": "events",
            "data": {"values": points},
            "mark": {"type": "point", "size": 90, "filled": True},
            "encoding": {"x": x, "y": {"field": "type", "type": "nominal", "title": "event type"},
                         "shape": {"field": "type", "type": "nominal", "legend": None}},
        },
    ]  # fmt: skip
    return spec
