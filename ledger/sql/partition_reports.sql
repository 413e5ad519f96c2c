-- partition_reports: every partition_done message received (grain: one row per message; a worker that
-- re-closes sends another). Append-only.
CREATE TABLE IF NOT EXISTS partition_reports (
    month VARCHAR NOT NULL,
    partition INTEGER NOT NULL,
    partitions INTEGER NOT NULL,          -- how many partitions the month is expected from
    close_id VARCHAR,
    companies INTEGER NOT NULL,           -- company_month messages the partition emitted
    accounts INTEGER NOT NULL,            -- decision messages the partition emitted
    checksum VARCHAR NOT NULL,            -- projections.snapshots.checksum of those decisions
    events_counted BIGINT,
    rejected BIGINT,
    duplicates_ignored BIGINT,
    late_since_close BIGINT,
    counts VARCHAR NOT NULL,              -- the message's counts object, JSON text
    emitted_at VARCHAR,
    received_at TIMESTAMPTZ NOT NULL,
    batch_id BIGINT NOT NULL,
    kafka_partition INTEGER NOT NULL,
    kafka_offset BIGINT NOT NULL
);
