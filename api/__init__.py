"""The HTTP service: `seatledger serve` (FastAPI on uvicorn).

One process, one app (`api.app.create_app`), resources in `api.routes`, reads through the read
model over DuckDB (`api.readmodel`, short read-only connections), events into Kafka through the
idempotent producer of `streams.publisher`, API keys in `api.keys`. A web console can be added
beside the API in the same app: it would reuse the read model, the keys and the problem handlers.
"""
