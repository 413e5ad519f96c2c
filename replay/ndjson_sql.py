"""The batch reader's SQL lane: DuckDB judges the plain activity and account lines of an NDJSON input.

Most lines of a real input are activity and account events written by a JSON library: one flat
object, the fields as plain JSON values, no escape. DuckDB parses those lines in bulk (`from_json`
with every field typed JSON, so a field's JSON type is known) and accepts a line only when it is
certainly an event the Python reader accepts, by the same rules, written once in `schemas.fast` as
data (activity kinds and their channel rule, account kinds and the forms of their fields, the
identifier pattern, lengths, timestamp forms and range):

- the line's bytes are exactly the compact encoding of the fields found: its length is the sum of
  theirs. That leaves no room for another member (an unknown field, a duplicate key), whitespace,
  a trailing comma or anything DuckDB's lenient parser takes and orjson refuses;
- no backslash anywhere, so every string's value is its bytes between the quotes;
- every field of the contract's form (`schema_version` the integer 1), and no field of another kind.

Every other line (company events, escapes, extras, packed arrays, anything doubtful or broken)
goes to the Python reader (`schemas.decode`), which gives the verdict and the exact error text.
The lane only decides faster what the Python path would decide; tests/unit/replay/test_ndjson_sql.py
feeds both the same hostile lines and holds the lane to a subset with equal rows.
"""

from __future__ import annotations

from schemas.fast import (
    ACCOUNT_KINDS,
    CHANNELS,
    EARLIEST_US,
    FAST_KINDS,
    FAST_TS_PATTERN,
    IDENT_CHARS,
    LATEST_US,
    MAX_EVENT_ID,
    MAX_IDENT,
    MAX_SOURCE,
    FieldForm,
)

# Kind-specific fields the lane reads, in key order (attrs are written with sorted keys).
ATTR_FIELDS = tuple(sorted({"channel"} | {f for fields in ACCOUNT_KINDS.values() for f in fields}))
# The fields the lane reads (a line with any other member is the Python path's).
FIELDS = ("event_id", "type", "occurred_at", "company_id", "user_id", "source", "schema_version", *ATTR_FIELDS)
_STRUCTURE = "{" + ", ".join(f'"{f}": "JSON"' for f in FIELDS) + "}"


def _quoted(text: str) -> str:
    """A JSON string's text (with its quotes) as a SQL literal."""
    return "'" + ('"' + text + '"').replace("'", "''") + "'"


def _strings(fields: list[tuple[str, str]]) -> str:
    """Each field (a JSON text) is a string whose value fully matches its RE2 pattern.

    One regular expression over the texts put together (a call per row, not per field: RE2's cost
    here is mostly per call); the quotes delimit the fields, no pattern matches a quote."""
    text = " || ".join(col for col, _ in fields)
    pattern = "".join(f'"{p}"' for _, p in fields)
    return f"regexp_full_match({text}, '{pattern}')"


def _unquote(col: str) -> str:
    """The value of an ASCII JSON string without escapes (its text between the quotes)."""
    return f"substr({col}, 2, strlen({col}) - 2)"


def _channel_rule(rule: str | None) -> str:
    """An activity kind's channel rule (`schemas.fast.FAST_KINDS`): absent where `channel` is not a
    field of the kind (it would be an extra), a channel where required, absent or a channel where
    optional (a null channel is kept in attrs: the Python path builds that row)."""
    channels = ", ".join(_quoted(c) for c in CHANNELS)
    if rule is None:
        return "j_channel IS NULL"
    if rule == "required":
        return f"j_channel IN ({channels})"
    return f"(j_channel IS NULL OR j_channel IN ({channels}))"


def _form(col: str, form: FieldForm) -> str:
    """`col` (a field's JSON text) is absent or of `form` (`schemas.fast.FieldForm`)."""
    if form.form == "enum":
        test = f"{col} IN ({', '.join(_quoted(v) for v in form.values)})"
    elif form.form == "ident":
        test = f"regexp_full_match({col}, '\"[{IDENT_CHARS}]{{1,{MAX_IDENT}}}\"')"
    elif form.form == "percent":  # as written by a JSON library: no sign, no leading zero, no fraction
        test = f"regexp_full_match({col}, '0|[1-9][0-9]?|100')"
    elif form.form == "bool":
        test = f"{col} IN ('true', 'false')"
    else:
        raise ValueError(f"unknown field form {form.form!r}")
    return f"({col} IS NULL OR {test})"


def _kind_rule() -> str:
    """Per kind: its own fields of their forms, and no field of another kind (an extra)."""
    whens = []
    for kind, rule in sorted(FAST_KINDS.items()):
        others = " AND ".join(f"j_{f} IS NULL" for f in ATTR_FIELDS if f != "channel")
        whens.append(f"WHEN {_quoted(kind)} THEN {_channel_rule(rule)} AND {others}")
    for kind, fields in sorted(ACCOUNT_KINDS.items()):
        conds = [_form(f"j_{f}", fields[f]) if f in fields else f"j_{f} IS NULL" for f in ATTR_FIELDS]
        whens.append(f"WHEN {_quoted(kind)} THEN {' AND '.join(conds)}")
    return f"CASE j_type {' '.join(whens)} ELSE false END"


def _attrs() -> str:
    """The row's `attrs`: the kind's fields present, compact, keys sorted (`replay.rows.event_row`);
    the kind rule has made sure only the kind's own fields are present."""
    parts = ", ".join(f"""CASE WHEN j_{f} IS NOT NULL THEN '"{f}":' || j_{f} END""" for f in ATTR_FIELDS)
    return f"'{{' || nullif(concat_ws(',', {parts}), '') || '}}'"


def _exact_length() -> str:
    """The line (without its newline) is the compact encoding of the fields found, nothing else."""
    parts = [f"CASE WHEN j_{f} IS NULL THEN 0 ELSE {len(f) + 3} + strlen(j_{f}) + 1 END" for f in FIELDS]
    return f"strlen(line) - 1 = 1 + {' + '.join(parts)}"


def _timestamp_us() -> str:
    """Microseconds since the epoch of `ts` (a FAST_TS_PATTERN string: ASCII digits where digits go,
    clock and offset in range), or NULL where `schemas.fast.fast_ts_us` finds no time: an impossible
    date or a lowercase t or z (DuckDB's cast refuses them)."""
    return "epoch_us(TRY_CAST(ts AS TIMESTAMPTZ))"


def lane_sql(source: str) -> str:
    """SELECT over `source` (`replay.ndjson_lines.SCHEMA`: `pos`, `line` ending in a newline, or its
    bytes as `raw` when its chunk was not all UTF-8): per line `pos`, then either the event's row
    (`replay.rows.COLUMNS`; `line` and `raw` NULL) when the lane accepts it, or the line for the
    Python path (row columns NULL): as `line`, or as `raw` when it is not UTF-8."""
    kinds = ", ".join(_quoted(k) for k in sorted([*FAST_KINDS, *ACCOUNT_KINDS]))
    js = ", ".join(f"j.{f}::VARCHAR AS j_{f}" for f in FIELDS)
    # event_id: printable ASCII but the quote (no string here holds one), a subset of str.isprintable()
    strings = _strings(
        [
            ("j_event_id", "[ !#-~]+"),
            ("j_company_id", f"[{IDENT_CHARS}]+"),
            ("j_user_id", f"[{IDENT_CHARS}]+"),
            ("j_occurred_at", FAST_TS_PATTERN),
        ]
    )
    accepted = f"""j_type IN ({kinds})
        AND strlen(j_event_id) <= {MAX_EVENT_ID + 2} AND strlen(j_company_id) <= {MAX_IDENT + 2}
        AND strlen(j_user_id) <= {MAX_IDENT + 2} AND {strings}
        AND (j_schema_version IS NULL OR j_schema_version = '1')
        AND (j_source IS NULL OR (starts_with(j_source, '"') AND strlen(j_source) <= {MAX_SOURCE + 2}))
        AND {_kind_rule()}
        AND {_exact_length()}"""
    parsed = f"""
        SELECT pos, line, raw, {js} FROM (
            SELECT pos, line, raw,
                   CASE WHEN starts_with(line, '{{') AND NOT contains(line, '\\') THEN try(from_json(line, '{_STRUCTURE}')) END AS j
            FROM (
                SELECT pos, l AS line, CASE WHEN l IS NULL THEN raw END AS raw
                FROM (SELECT pos, raw, CASE WHEN line IS NULL THEN try(decode(raw)) ELSE line END AS l FROM {source})
            )
        )"""
    judged = f"""
        SELECT pos, line, raw, j_event_id, j_type, j_company_id, j_user_id, j_source, {_unquote("j_occurred_at")} AS ts,
               {_attrs()} AS attrs,
               coalesce({accepted}, false) AS fast
        FROM ({parsed})"""
    row = f"""
        SELECT pos, fast, {_unquote("j_event_id")} AS event_id, {_unquote("j_type")} AS type, {_timestamp_us()} AS occurred_at_us,
               {_unquote("j_company_id")} AS company_id, {_unquote("j_user_id")} AS user_id,
               attrs,
               NULL::VARCHAR AS extras, trim(j_source, '"') AS source, line, raw
        FROM ({judged})"""
    in_range = f"occurred_at_us >= {EARLIEST_US} AND occurred_at_us < {LATEST_US}"
    return f"""
        SELECT pos,
               CASE WHEN ok THEN event_id END AS event_id, CASE WHEN ok THEN type END AS type,
               CASE WHEN ok THEN occurred_at_us END AS occurred_at_us, CASE WHEN ok THEN company_id END AS company_id,
               CASE WHEN ok THEN user_id END AS user_id, CASE WHEN ok THEN attrs END AS attrs, extras,
               CASE WHEN ok THEN source END AS source,
               CASE WHEN ok THEN NULL ELSE line END AS line, CASE WHEN ok THEN NULL ELSE raw END AS raw
        FROM (SELECT *, fast AND coalesce({in_range}, false) AS ok FROM ({row}))"""


__all__ = ["lane_sql", "FIELDS", "ATTR_FIELDS"]
