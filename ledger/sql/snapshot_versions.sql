-- snapshot_versions: every decision version ever received (grain: company_id x user_id x month x version).
-- Append-only: nothing is ever updated or deleted. The sink numbers versions (it is the single
-- writer): a message whose digest equals the latest stored version's is a redelivery and is not
-- stored; otherwise version = latest + 1 and corrects_version = the previous latest.
-- The first eleven columns are projections.decide.DECISION_COLUMNS.
CREATE TABLE IF NOT EXISTS snapshot_versions (
    company_id VARCHAR NOT NULL,
    user_id VARCHAR NOT NULL,
    month VARCHAR NOT NULL,               -- 'YYYY-MM', in the company's time zone
    billable BOOLEAN NOT NULL,
    charged BOOLEAN NOT NULL,
    tier VARCHAR NOT NULL,
    rule VARCHAR NOT NULL,
    reason VARCHAR NOT NULL,
    evidence VARCHAR NOT NULL,            -- JSON array text [{event_id, type, occurred_at}]
    unit_price_usd DECIMAL(12, 2) NOT NULL,
    ruleset_version VARCHAR NOT NULL,
    plan VARCHAR NOT NULL,
    version INTEGER NOT NULL,             -- assigned by the sink: 1, 2, ...
    corrects_version INTEGER,             -- the version this one replaces (NULL for version 1)
    amend_reason VARCHAR,                 -- late_event | dispute:TICKET | NULL (close)
    emitted_version INTEGER,              -- the version number the emitter put on the message
    in_report BOOLEAN,                    -- R14: monthly-active on the month's last day
    digest VARCHAR NOT NULL,              -- projections.snapshots.digest of the published values
    close_id VARCHAR,
    partition INTEGER,                    -- the worker partition that emitted it
    emitted_at VARCHAR,
    received_at TIMESTAMPTZ NOT NULL,
    batch_id BIGINT NOT NULL,
    kafka_partition INTEGER NOT NULL,
    kafka_offset BIGINT NOT NULL
);
