-- invoice_adjustments: a correction of an already invoiced month (grain: one row per decision version
-- stored after the corrected month's invoice was issued). amount_usd = new charged price - old
-- charged price. Pending while applied_to_invoice_month IS NULL; set (the one update this table
-- gets) when the company's next invoice, for a later month, is issued.
CREATE TABLE IF NOT EXISTS invoice_adjustments (
    company_id VARCHAR NOT NULL,
    corrected_month VARCHAR NOT NULL,
    user_id VARCHAR NOT NULL,
    corrects_version INTEGER,             -- NULL: an account the invoiced month did not have
    new_version INTEGER NOT NULL,
    reason VARCHAR NOT NULL,              -- late_event | dispute:TICKET | ...
    amount_usd DECIMAL(12, 2) NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    applied_to_invoice_month VARCHAR,
    applied_at TIMESTAMPTZ
);
