"""The public event contract (docs/contract.md) as frozen pydantic v2 models.

Other teams code against the JSON Schema generated from these models (`seatledger schemas export`),
so every rule of the contract lives here and nowhere else. Unknown extra fields are kept (the
archive stores them) and ignored by the rules.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Annotated, Final, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

from schemas.timezones import zone_problem

SCHEMA_VERSION: Final = 1

# The instants an event may happen at: [EARLIEST, LATEST). Outside it a date is a bug or an attack
# (year 1 or 9999 overflows a local date; a span of centuries would make a run pay for every day).
EARLIEST: Final = datetime(2000, 1, 1, tzinfo=UTC)
LATEST: Final = datetime(2100, 1, 1, tzinfo=UTC)
EARLIEST_DAY: Final = date(2000, 1, 1)
LATEST_DAY: Final = date(2099, 12, 31)
RANGE_TEXT: Final = "[2000-01-01T00:00:00Z, 2100-01-01T00:00:00Z)"
MAX_PO_NUMBER: Final = 64  # characters of a PO number (billing_profile_updated, `invoice-annotate --po`)

# Characters no id may hold: the C0 and C1 controls, the line and paragraph separators, and the
# invisible format characters that change how text around them is displayed (zero-width spaces
# and joiners, bidirectional embeddings, overrides and isolates, the byte-order mark). Written with
# \uXXXX escapes, which Python and the JSON Schema's regular expressions (ECMA 262) read alike.
CONTROL_RANGES: Final = r"\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff"
_CONTROL = re.compile(f"[{CONTROL_RANGES}]")

_RFC3339 = re.compile(
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(?P<offset>[Zz]|[+-][0-9]{2}:[0-9]{2})?$"
)


def parse_rfc3339(value: object) -> datetime:
    """An RFC 3339 timestamp with an explicit offset; naive timestamps are refused, never guessed."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("timestamp has no UTC offset; use RFC 3339 with 'Z' or '+HH:MM'")
        return value
    if not isinstance(value, str):
        raise ValueError("timestamp must be an RFC 3339 string")
    m = _RFC3339.fullmatch(value)  # not `match`: its `$` also matches before a final newline
    if not m:
        raise ValueError(f"unparsable timestamp {value!r}; expected RFC 3339 such as 2026-10-02T08:14:03Z")
    offset = m.group("offset")
    if offset is None:
        raise ValueError(f"timestamp {value!r} has no UTC offset; use RFC 3339 with 'Z' or '+HH:MM'")
    if offset not in "Zz" and (int(offset[1:3]) > 23 or int(offset[4:6]) > 59):
        raise ValueError(f"timestamp {value!r} has UTC offset {offset}, out of range (-23:59 to +23:59)")
    text = value
    frac = m.group(1)
    if frac and len(frac) > 7:  # Python keeps microseconds: cut nanoseconds, never round up a second
        text = value.replace(frac, frac[:7], 1)
    try:
        ts = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError as exc:
        raise ValueError(f"unparsable timestamp {value!r}: {exc}") from None
    if not EARLIEST <= ts < LATEST:  # aware datetimes compare without converting: no overflow
        raise ValueError(f"timestamp {value!r} is outside the accepted range {RANGE_TEXT}")
    return ts


def _check_zone(value: str) -> str:
    problem = zone_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def control_character(text: str) -> str | None:
    """The first forbidden control character of `text` and where, for an error message; else None."""
    m = _CONTROL.search(text)
    return None if m is None else f"control character U+{ord(m.group()):04X} at position {m.start()}"


def _check_event_id(value: str) -> str:
    if value.isprintable():  # the common case; isprintable() refuses every character of the class
        return value
    found = control_character(value)
    if found is not None:
        raise ValueError(f"{found}; an event_id is 1-128 printable characters")
    return value


def _strict_version(value: object) -> object:
    """`schema_version` is an integer, strictly: `Literal[1]` alone takes `true` and `1.0`, which
    equal 1 in Python; `true` is no integer to the published JSON Schema, and the contract's
    integers are strict (`50.0` is refused as `away_from_desk_pct`)."""
    if value is not None and type(value) is not int:
        raise PydanticCustomError("literal_error", "Input should be {expected}", {"expected": "1"})
    return value


_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")  # ASCII digits only (not \d: that takes any script's)


def _day_text(value: object) -> object:
    """A date is written YYYY-MM-DD, as the JSON Schema says (string, format date): pydantic's date
    alone also takes a number (Unix seconds: 1790035200 became 2026-09-22) and a datetime with an
    offset (whose time and offset it drops). A `date` object (from Python) passes."""
    if isinstance(value, str) and _DAY.fullmatch(value):
        return value
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    raise ValueError(f"expected a date written YYYY-MM-DD, got {value!r}")


def _check_day(value: date) -> date:
    if not EARLIEST_DAY <= value <= LATEST_DAY:
        raise ValueError(f"date {value.isoformat()} is outside the accepted range [2000-01-01, 2099-12-31]")
    return value


Timestamp = Annotated[
    datetime,
    BeforeValidator(parse_rfc3339),
    WithJsonSchema(
        {
            "type": "string",
            "format": "date-time",
            "description": f"RFC 3339 with an offset; the instant lies in {RANGE_TEXT}",
        }
    ),
]
Identifier = Annotated[StrictStr, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")]
EventId = Annotated[
    StrictStr,
    Field(min_length=1, max_length=128, json_schema_extra={"pattern": f"^[^{CONTROL_RANGES}]+$"}),
    AfterValidator(_check_event_id),
]
Day = Annotated[
    date,
    BeforeValidator(_day_text),
    AfterValidator(_check_day),
    Field(description="YYYY-MM-DD, from 2000-01-01 to 2099-12-31"),
]
Channel = Literal["web", "mobile"]
Employment = Literal["employee", "contractor", "volunteer", "other"]
RoleCategory = Literal["customer_facing", "backstage", "public_service", "medical", "other"]
Plan = Literal["premium", "advanced", "enterprise"]
EligibleOrgType = Literal["charity", "ngo", "foundation", "community_group", "other_nonprofit"]
ExcludedOrgType = Literal[
    "health_insurance",
    "education",
    "government",
    "political",
    "religious",
    "professional_sports",
    "cooperative",
]
OrganizationType = Literal[EligibleOrgType, ExcludedOrgType]  # one flat Literal of both lists, in this order
ELIGIBLE_ORG_TYPES: tuple[str, ...] = get_args(EligibleOrgType)
EXCLUDED_ORG_TYPES: tuple[str, ...] = get_args(ExcludedOrgType)
CardBrand = Literal["amex", "visa", "discover", "mastercard"]
TimeZoneName = Annotated[
    StrictStr,
    AfterValidator(_check_zone),
    Field(
        description="an IANA zone name shipped in the tzdata package, e.g. Europe/Amsterdam; not localtime, posix/ or right/"
    ),
]


class Envelope(BaseModel):
    """Fields every event carries."""

    model_config = ConfigDict(frozen=True, extra="allow", str_strip_whitespace=False)

    event_id: EventId
    type: str
    occurred_at: Timestamp
    company_id: Identifier
    schema_version: Annotated[Literal[1], BeforeValidator(_strict_version)] = SCHEMA_VERSION
    source: Annotated[StrictStr, Field(max_length=128)] | None = None

    @property
    def extras(self) -> dict:
        return dict(self.__pydantic_extra__ or {})


class AccountScoped(Envelope):
    """Activity and account kinds: they need a `user_id`."""

    user_id: Identifier


class CompanyScoped(Envelope):
    """Company kinds: a `user_id` is forbidden, not ignored, so a mis-typed event is caught."""

    @model_validator(mode="before")
    @classmethod
    def _no_user_id(cls, data):
        if isinstance(data, dict) and "user_id" in data:
            raise ValueError(f"user_id is forbidden on company event type {data.get('type')!r}")
        return data


# Activity kinds ---------------------------------------------------------------------------------


class Visit(AccountScoped):
    type: Literal["visit"]
    channel: Channel


class Login(AccountScoped):
    type: Literal["login"]


class NotificationView(AccountScoped):
    type: Literal["notification_view"]
    channel: Channel | None = None


class ChatUse(AccountScoped):
    type: Literal["chat_use"]


class AdminPanelUse(AccountScoped):
    type: Literal["admin_panel_use"]


class PushNotificationReceived(AccountScoped):
    type: Literal["push_notification_received"]


class EmailNotificationReceived(AccountScoped):
    type: Literal["email_notification_received"]


# Account kinds ----------------------------------------------------------------------------------


class AccountProvisioned(AccountScoped):
    type: Literal["account_provisioned"]
    employment: Employment = "employee"


class Invite(AccountScoped):
    type: Literal["invite"]
    guest_home_company_id: Identifier | None = None


class Claim(AccountScoped):
    type: Literal["claim"]


class Deactivate(AccountScoped):
    type: Literal["deactivate"]


class Reactivate(AccountScoped):
    type: Literal["reactivate"]


class ProfileUpdate(AccountScoped):
    """A partial update: fields left out keep their value."""

    type: Literal["profile_update"]
    employment: Employment | None = None
    away_from_desk_pct: Annotated[StrictInt, Field(ge=0, le=100)] | None = None
    hourly_paid: StrictBool | None = None
    has_email: StrictBool | None = None
    role_category: RoleCategory | None = None


# Company kinds ----------------------------------------------------------------------------------


class CompanyRegistered(CompanyScoped):
    type: Literal["company_registered"]
    timezone: TimeZoneName = "UTC"
    name: StrictStr | None = None


class PlanChanged(CompanyScoped):
    type: Literal["plan_changed"]
    plan: Plan


class TrialStarted(CompanyScoped):
    type: Literal["trial_started"]
    last_trial_day: Day | None = None


class NonprofitVerified(CompanyScoped):
    """The token is checked by rule R8, not here: a malformed token is a valid event that fails."""

    type: Literal["nonprofit_verified"]
    techsoup_token: StrictStr
    organization_type: OrganizationType


class NonprofitRevoked(CompanyScoped):
    type: Literal["nonprofit_revoked"]


class BillingProfileUpdated(CompanyScoped):
    """A partial update: fields left out keep their value; `po_number: null` clears the PO number."""

    type: Literal["billing_profile_updated"]
    payment_method: Literal["card", "invoice"] | None = None
    card_brand: CardBrand | None = None
    billing_country: Annotated[StrictStr, Field(pattern=r"^[A-Z]{2}$")] | None = None
    po_number: Annotated[StrictStr, Field(max_length=MAX_PO_NUMBER)] | None = None

    @model_validator(mode="after")
    def _card_needs_brand(self):
        if self.payment_method == "card" and self.card_brand is None:
            raise ValueError("card_brand is required when payment_method is 'card'")
        return self


ActivityEvent = (
    Visit | Login | NotificationView | ChatUse | AdminPanelUse | PushNotificationReceived | EmailNotificationReceived
)
AccountEvent = AccountProvisioned | Invite | Claim | Deactivate | Reactivate | ProfileUpdate
CompanyEvent = (
    CompanyRegistered | PlanChanged | TrialStarted | NonprofitVerified | NonprofitRevoked | BillingProfileUpdated
)


def _type_of(model: type[Envelope]) -> str:
    """The one `type` value a model accepts (its field is a one-value Literal)."""
    return str(get_args(model.model_fields["type"].annotation)[0])


EVENT_MODELS: dict[str, type[Envelope]] = {
    _type_of(m): m for m in (*get_args(ActivityEvent), *get_args(AccountEvent), *get_args(CompanyEvent))
}
ACTIVITY_TYPES = frozenset(_type_of(m) for m in get_args(ActivityEvent))
ACCOUNT_TYPES = frozenset(_type_of(m) for m in get_args(AccountEvent))
COMPANY_TYPES = frozenset(_type_of(m) for m in get_args(CompanyEvent))

Event = Annotated[ActivityEvent | AccountEvent | CompanyEvent, Field(discriminator="type")]
