-- estimates: the bill so far, PROVISIONAL (grain: company_id x month x estimate_id x user_id).
-- One row per account of an estimate run: the decision the close would make if the month ended
-- at as_of and nothing else happened (projections.estimate), with how settled it is. Never billed
-- data: no invoice, adjustment or certificate reads it. The run in force for a company-month is the
-- one `estimate_invoices` names; rows of older runs are deleted when a newer run's company row is
-- stored. The first eleven columns are projections.decide.DECISION_COLUMNS.
CREATE TABLE IF NOT EXISTS estimates (
    company_id VARCHAR NOT NULL,
    user_id VARCHAR NOT NULL,
    month VARCHAR NOT NULL,
    billable BOOLEAN NOT NULL,
    charged BOOLEAN NOT NULL,
    tier VARCHAR NOT NULL,
    rule VARCHAR NOT NULL,
    reason VARCHAR NOT NULL,
    evidence VARCHAR NOT NULL,            -- JSON array text [{event_id, type, occurred_at}]
    unit_price_usd DECIMAL(12, 2) NOT NULL,
    ruleset_version VARCHAR NOT NULL,
    plan VARCHAR NOT NULL,
    status VARCHAR NOT NULL,              -- on_track | at_risk | not_billed
    status_reason VARCHAR NOT NULL,       -- billable_so_far | awaiting_billing_activity | may_start_on_day_1 | ...
    estimate_id VARCHAR NOT NULL,
    as_of TIMESTAMPTZ NOT NULL,           -- the run's time: every event published before it is counted
    partition INTEGER,
    emitted_at VARCHAR,
    received_at TIMESTAMPTZ NOT NULL,
    batch_id BIGINT NOT NULL,
    PRIMARY KEY (company_id, month, estimate_id, user_id)
);
