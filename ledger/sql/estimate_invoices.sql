-- estimate_invoices: the latest estimated invoice of each company-month, PROVISIONAL
-- (grain: company_id x month). Replaced by a later run (a later as_of); an older run arriving late
-- is ignored. Its estimate_id names the `estimates` rows of that run. Never an issued invoice.
CREATE TABLE IF NOT EXISTS estimate_invoices (
    company_id VARCHAR NOT NULL,
    month VARCHAR NOT NULL,
    estimate_id VARCHAR NOT NULL,
    as_of TIMESTAMPTZ NOT NULL,
    accounts INTEGER NOT NULL,            -- estimates rows of the run
    on_track INTEGER NOT NULL,
    at_risk INTEGER NOT NULL,
    not_billed INTEGER NOT NULL,
    plan VARCHAR,
    billable_accounts INTEGER NOT NULL,
    charged_accounts INTEGER NOT NULL,
    subtotal_usd DECIMAL(14, 2) NOT NULL,  -- what the month would cost if it ended at as_of
    free_reason VARCHAR,
    invoice VARCHAR NOT NULL,             -- the estimated invoice JSON (projections.invoice), provisional
    partition INTEGER,
    emitted_at VARCHAR,
    received_at TIMESTAMPTZ NOT NULL,
    batch_id BIGINT NOT NULL,
    PRIMARY KEY (company_id, month)
);
