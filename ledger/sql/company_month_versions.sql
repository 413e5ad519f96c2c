-- company_month_versions: every distinct company_month message received (grain: company_id x month x version).
-- Append-only. Versioned like decisions, by the content of the invoice JSON and the MAU series:
-- an identical redelivery is not stored.
CREATE TABLE IF NOT EXISTS company_month_versions (
    company_id VARCHAR NOT NULL,
    month VARCHAR NOT NULL,
    version INTEGER NOT NULL,
    corrects_version INTEGER,
    emitted_version INTEGER,
    content_digest VARCHAR NOT NULL,
    invoice VARCHAR NOT NULL,             -- the invoice JSON as computed at close (projections.invoice)
    mau VARCHAR NOT NULL,                 -- JSON [[day, mau], ...]
    close_id VARCHAR,
    partition INTEGER,
    emitted_at VARCHAR,
    received_at TIMESTAMPTZ NOT NULL,
    batch_id BIGINT NOT NULL,
    kafka_partition INTEGER NOT NULL,
    kafka_offset BIGINT NOT NULL
);
