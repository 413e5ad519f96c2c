-- month_completions: the moment a month became complete in this database (grain: month).
-- Inserted once, in the transaction that stored the last rows the month was waiting for: every
-- expected partition reported partition_done AND the decisions and company_months each report
-- counted are stored. Views show a month's decisions only once it is here.
CREATE TABLE IF NOT EXISTS month_completions (
    month VARCHAR NOT NULL,
    partitions INTEGER NOT NULL,
    completed_at TIMESTAMPTZ NOT NULL,
    batch_id BIGINT NOT NULL
);
