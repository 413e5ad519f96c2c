-- invoice_annotations: R11's one exception (grain: one row per annotation): a PO number added to an
-- already issued invoice, with its time. Changes no amount. Written by `seatledger invoice-annotate`.
CREATE TABLE IF NOT EXISTS invoice_annotations (
    company_id VARCHAR NOT NULL,
    month VARCHAR NOT NULL,
    po_number VARCHAR NOT NULL,
    annotated_at TIMESTAMPTZ NOT NULL,
    annotated_by VARCHAR
);
