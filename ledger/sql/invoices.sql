-- invoices: R11, one issued invoice per company per month (grain: company_id x month).
-- Inserted once when the month is complete; never updated. Lines: invoice_lines; corrections of
-- earlier months carried by this invoice: invoice_adjustments.applied_to_invoice_month = month.
CREATE TABLE IF NOT EXISTS invoices (
    company_id VARCHAR NOT NULL,
    month VARCHAR NOT NULL,
    plan VARCHAR,
    billable_accounts INTEGER NOT NULL,
    charged_accounts INTEGER NOT NULL,
    subtotal_usd DECIMAL(14, 2) NOT NULL,     -- sum of invoice_lines.amount_usd
    adjustments_usd DECIMAL(14, 2) NOT NULL,  -- sum of the adjustments this invoice carries
    total_usd DECIMAL(14, 2) NOT NULL,        -- subtotal + adjustments, taxes excluded
    currency VARCHAR NOT NULL,
    taxes VARCHAR NOT NULL,
    po_number VARCHAR,                        -- in force when issued (later additions: invoice_annotations)
    payment_method VARCHAR,
    card_brand VARCHAR,
    billing_country VARCHAR,
    qualifies_for_invoice_payment BOOLEAN NOT NULL,  -- R12: subtotal above USD 5,000
    free_reason VARCHAR,                      -- trial | nonprofit | NULL
    notices VARCHAR NOT NULL,                 -- JSON array of strings
    company_month_version INTEGER NOT NULL,   -- the company_month version the profile came from
    close_subtotal_usd DECIMAL(14, 2),        -- the subtotal the worker computed at close
    matches_close BOOLEAN NOT NULL,           -- lines equal the close's lines
    issued_at TIMESTAMPTZ NOT NULL,
    batch_id BIGINT NOT NULL
);
