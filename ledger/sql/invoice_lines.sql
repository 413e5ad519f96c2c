-- invoice_lines: lines of an issued invoice (grain: company_id x month x plan x tier x unit price).
-- Inserted with the invoice; never updated.
CREATE TABLE IF NOT EXISTS invoice_lines (
    company_id VARCHAR NOT NULL,
    month VARCHAR NOT NULL,
    line_no INTEGER NOT NULL,
    plan VARCHAR NOT NULL,
    tier VARCHAR NOT NULL,
    count INTEGER NOT NULL,
    unit_price_usd DECIMAL(12, 2) NOT NULL,
    amount_usd DECIMAL(14, 2) NOT NULL
);
