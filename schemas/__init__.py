"""The public event contract: models, decoding with specific errors, JSON Schema export."""

from schemas.decode import EventRejected, Rejection, SchemaError, decode_message, event_to_json, validate_event
from schemas.events import ACCOUNT_TYPES, ACTIVITY_TYPES, COMPANY_TYPES, EVENT_MODELS, Envelope, Event

__all__ = [
    "ACCOUNT_TYPES",
    "ACTIVITY_TYPES",
    "COMPANY_TYPES",
    "EVENT_MODELS",
    "Envelope",
    "Event",
    "EventRejected",
    "Rejection",
    "SchemaError",
    "decode_message",
    "event_to_json",
    "validate_event",
]
