"""Values printed into human-readable output, escaped so that no value can forge the output.

An id or a PO number comes from a publisher. Printed raw, a newline in it would add a line of its
own (a fake `total USD 0.00` on an invoice), a bidirectional override would reorder what a reader
sees, a backquote or a pipe would break out of a Markdown code span or table cell. Every renderer
of text, Markdown or CSV passes such values through here (CSV's formula guard is
`projections.exports.safe_cell`); JSON output needs nothing: the encoder escapes.
"""

from __future__ import annotations

import re

_BACKTICKS = re.compile(r"`+")


def escape_text(value: object) -> str:
    """`value` as one line of printable text: every character that is not printable (controls,
    line and paragraph separators, format characters such as bidirectional overrides, unassigned
    code points) becomes its Python escape (`\\n`, `\\x1b`, `\\u202e`). Printable text comes back
    unchanged, so escaping twice changes nothing (a reason that quotes a value with repr() keeps
    its one backslash)."""
    text = "" if value is None else str(value)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def md_code(value: object, *, in_table: bool = False) -> str:
    """`value` as a Markdown code span that nothing inside can end early: a fence of one more
    backquote than its longest run, padded when it starts or ends with one; in a table cell the
    pipes are escaped as well (GitHub-flavoured Markdown splits cells before reading spans)."""
    text = escape_text(value)
    longest = max((len(m.group()) for m in _BACKTICKS.finditer(text)), default=0)
    fence = "`" * (longest + 1)
    if text.startswith(("`", " ")) or text.endswith(("`", " ")):
        text = f" {text} "
    if in_table:
        text = text.replace("|", "\\|")
    return f"{fence}{text}{fence}"


def md_cell(value: object) -> str:
    """`value` as plain Markdown text (a table cell, a list item): escaped, and the characters
    that would open a cell, a code span, HTML or a link backslash-escaped. Underscores stay: the
    reason codes have them, and inside a word they start no emphasis."""
    return _MD_SPECIAL.sub(r"\\\g<0>", escape_text(value))


_MD_SPECIAL = re.compile(r"[\\`|<>\[\]]")
