"""POST /v1/events: events in over HTTP, answered once Kafka acknowledged them."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from api import problems
from api.auth import Publisher
from api.config import ApiSettings
from api.ingest import JSON_TYPE, read_events
from api.metrics import ApiMetrics
from api.models import IngestResult, Rejection
from api.problems import ApiProblem
from api.producer import EventProducer, KafkaUnavailable

router = APIRouter(prefix="/v1", tags=["events"])

KAFKA_RETRY_AFTER_S = "5"
_EVENTS = {"type": "array", "items": {"$ref": "#/components/schemas/Event"}}
_BODY = {
    "required": True,
    "content": {
        "application/x-ndjson": {"schema": _EVENTS | {"description": "one event object per line"}},
        JSON_TYPE: {"schema": _EVENTS | {"description": "a JSON array of event objects"}},
    },
    "description": "events of the contract (docs/contract.md), at most 10,000 and 5 MiB (configurable); "
    "each is judged on its own: an invalid one is listed in the answer, not refused with the request",
}


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The body, or 413 as soon as it is known to exceed `max_bytes` (Content-Length or streamed)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise ApiProblem("payload-too-large", f"body of {int(declared)} bytes; at most {max_bytes}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise ApiProblem("payload-too-large", f"body over {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    "/events",
    response_model=IngestResult,
    summary="Publish events (NDJSON or a JSON array); answered after Kafka acknowledged them",
    responses=problems.responses(400, 401, 403, 413, 415, 422, 429, 503),
    openapi_extra={"requestBody": _BODY},
)
async def post_events(request: Request, key: Publisher) -> IngestResult:
    """Validate every event like `seatledger publish`, send the valid ones of the key's companies,
    and list the others with their index, event_id and reason. 503: nothing was accepted; retrying
    the same request is safe (events count once per event_id)."""
    cfg: ApiSettings = request.app.state.config.api
    body = await read_body(request, cfg.max_body_bytes)
    batch = await run_in_threadpool(read_events, body, request.headers.get("content-type"), key.covers, cfg.max_events)
    producer: EventProducer = request.app.state.producer
    metrics: ApiMetrics = request.app.state.metrics
    if batch.accepted:
        try:
            await producer.publish(batch.accepted)
        except KafkaUnavailable as exc:
            raise ApiProblem("kafka-unavailable", str(exc), {"Retry-After": KAFKA_RETRY_AFTER_S}) from None
    metrics.events_accepted.inc(len(batch.accepted))
    metrics.events_rejected.inc(len(batch.rejections))
    rejections = [Rejection(**r) for r in batch.rejections]
    return IngestResult(accepted=len(batch.accepted), rejected=len(rejections), rejections=rejections)
