"""The smallest Faust app touching what billing relies on: an explicit source topic, one agent with
concurrency 1, one table (memory store). Run as a worker subprocess by test_faust_smoke.py.

Configured from SMOKE_* environment variables only; Faust's own env variables are namespaced with
`env_prefix` so a stray WEB_PORT or BROKER_URL cannot change it.
"""

import os

import faust

env = os.environ
app = faust.App(
    env["SMOKE_APP_ID"],
    broker=f"kafka://{env['SMOKE_BOOTSTRAP']}",
    store="memory://",
    datadir=env["SMOKE_DATADIR"],
    topic_partitions=int(env["SMOKE_PARTITIONS"]),
    web_enabled=False,
    web_bind="127.0.0.1",
    web_host="127.0.0.1",
    web_port=int(env["SMOKE_WEB_PORT"]),
    env_prefix="SMOKE_FAUST_",
)
# value_type=bytes alone still decodes with the app default (json): ask for the raw codec.
source = app.topic(
    env["SMOKE_TOPIC"],
    key_type=bytes,
    value_type=bytes,
    key_serializer="raw",
    value_serializer="raw",
    partitions=int(env["SMOKE_PARTITIONS"]),
)
counts = app.Table("counts", default=int)


@app.agent(source, concurrency=1)
async def count(stream):
    async for key, value in stream.items():
        company = key.decode()
        counts[company] += 1
        print(f"SMOKE-CONSUMED key={company} value={value.decode()} count={counts[company]}", flush=True)


if __name__ == "__main__":
    app.main()
