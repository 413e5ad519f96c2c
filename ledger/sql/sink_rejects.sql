-- sink_rejects: a snapshot-topic record the sink could not read (grain: topic x partition x offset
-- x element). Kept with its bytes and the error instead of stopping the sink or dropping it silently.
CREATE TABLE IF NOT EXISTS sink_rejects (
    topic VARCHAR NOT NULL,
    kafka_partition INTEGER NOT NULL,
    kafka_offset BIGINT NOT NULL,
    error VARCHAR NOT NULL,
    raw VARCHAR,
    received_at TIMESTAMPTZ NOT NULL
);
