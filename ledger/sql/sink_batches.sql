-- sink_batches: one row per transaction the sink committed (grain: batch_id).
-- Written by the sink only; the audit trail of what each write contained.
CREATE TABLE IF NOT EXISTS sink_batches (
    batch_id BIGINT NOT NULL,
    written_at TIMESTAMPTZ NOT NULL,
    messages INTEGER NOT NULL,        -- Kafka records consumed in this batch
    rows_written INTEGER NOT NULL,    -- rows inserted over every table
    duplicates_skipped INTEGER NOT NULL
);
