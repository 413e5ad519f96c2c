"""A company's evidence column written at once (streams.evidence_column) is, account by account,
the text `evidence_of` writes: over hostile event ids and types, instants on DST days, zones with
odd offsets and fractional seconds, and companies above and below the column's threshold."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from projections.calendar import zone
from streams import evidence_column as column
from streams.evidence_column import evidence_column
from streams.stored_decide import evidence_of

ZONES = ("UTC", "Europe/Amsterdam", "America/St_Johns", "Asia/Kathmandu", "Australia/Lord_Howe", "Africa/Monrovia")
# instants around the 2026 DST changes of Amsterdam and Lord Howe, and anywhere in 2000-2099
DST_DAYS = (1_774_742_400_000_000, 1_792_886_400_000_000, 1_775_311_200_000_000, 1_791_385_200_000_000)
INSTANTS = st.one_of(
    st.builds(lambda d, o: d + o, st.sampled_from(DST_DAYS), st.integers(-86_400_000_000, 2 * 86_400_000_000)),
    st.integers(min_value=946_684_800_000_000, max_value=4_102_444_799_999_999),
)
WHOLE_OR_NOT = st.one_of(INSTANTS, INSTANTS.map(lambda us: us - us % 1_000_000))
SAFE_IDS = st.text("0123456789abcdef-é☃😀", min_size=1, max_size=8)
HOSTILE_IDS = st.sampled_from(['a"b', "a\\b", "tab\there", "\x00\x1f", "del\x7f", "\u2028", ""])
KINDS = st.sampled_from(["login", "account_provisioned", 'we"ird', "back\\slash", "ctl\x01"])


def accounts_of(ids: st.SearchStrategy[str]) -> st.SearchStrategy[list[list]]:
    """Accounts' items as the close gives them: mostly one item or two, sometimes the same event
    twice or three items; items as lists (slices of the stored value) or tuples (constants)."""
    item = st.tuples(WHOLE_OR_NOT, ids, KINDS)
    items = st.lists(st.one_of(item, item.map(list)), min_size=1, max_size=3)
    twice = item.map(lambda it: [it, it])
    return st.lists(st.one_of(items, twice), max_size=3 * column.COLUMN_MIN)


@settings(max_examples=300, deadline=None)
@given(accounts=accounts_of(SAFE_IDS), zone_name=st.sampled_from(ZONES))
def test_the_column_is_the_text_of_each_account(accounts, zone_name):
    tz = zone(zone_name)
    assert evidence_column(accounts, tz) == [evidence_of(items, tz) for items in accounts]


@settings(max_examples=200, deadline=None)
@given(
    accounts=accounts_of(st.one_of(SAFE_IDS, HOSTILE_IDS)),
    hostile=st.lists(st.tuples(INSTANTS, HOSTILE_IDS, KINDS), min_size=1, max_size=2),
    zone_name=st.sampled_from(ZONES),
)
def test_ids_that_need_escaping_give_the_same_text(accounts, hostile, zone_name):
    """An id orjson escapes anywhere in the company: every account still gets `evidence_of`'s text."""
    tz = zone(zone_name)
    accounts = [*accounts, hostile] * column.COLUMN_MIN
    assert evidence_column(accounts, tz) == [evidence_of(items, tz) for items in accounts]
