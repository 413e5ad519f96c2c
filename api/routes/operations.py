"""For operators, without a key: /healthz (the ledger is readable and Kafka answers) and /metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from api.models import Health

router = APIRouter(tags=["operations"])


@router.get(
    "/healthz",
    response_model=Health,
    summary="200 when the ledger is readable and Kafka answers, else 503 with what is wrong",
    responses={503: {"model": Health, "description": "the ledger or Kafka is unavailable"}},
)
async def healthz(request: Request) -> JSONResponse:
    db = await run_in_threadpool(request.app.state.ledger.check)
    kafka = await request.app.state.producer.check()
    ok = db == "ok" and kafka == "ok"
    body = Health(status="ok" if ok else "unavailable", db=db, kafka=kafka)
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)


@router.get(
    "/metrics",
    summary="Prometheus metrics of this process",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Prometheus text"}},
)
def metrics(request: Request) -> Response:
    return request.app.state.metrics.exposition()
