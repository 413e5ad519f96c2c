-- disputes: one row per applied dispute ticket (grain: ticket), from `dispute_applied` messages.
-- Stored once per ticket (a redelivery or a second message for the same ticket is ignored). The
-- decision amendments themselves arrive as `decision` messages with amend_reason 'dispute:TICKET'.
CREATE TABLE IF NOT EXISTS disputes (
    ticket VARCHAR NOT NULL,
    company_id VARCHAR NOT NULL,
    month VARCHAR NOT NULL,
    requested_by VARCHAR,
    applied_at VARCHAR,
    changes VARCHAR NOT NULL,             -- JSON array, as sent
    received_at TIMESTAMPTZ NOT NULL,
    batch_id BIGINT NOT NULL
);
