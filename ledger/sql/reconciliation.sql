-- reconciliation: why an account counts in the MAU report but not on the invoice, or the reverse
-- (grain: company_id x user_id x month). Same codes as projections.mau.reconcile: in_both,
-- report_only:<reason>, invoice_only:<reason>, neither:<reason>. An unknown in_report counts as false.
CREATE OR REPLACE VIEW reconciliation AS
SELECT
    company_id,
    user_id,
    month,
    coalesce(in_report, false) AS in_report,
    billable,
    CASE
        WHEN coalesce(in_report, false) AND billable THEN 'in_both'
        WHEN coalesce(in_report, false) THEN 'report_only:' || reason
        WHEN billable THEN 'invoice_only:' || reason
        ELSE 'neither:' || reason
    END AS explanation
FROM latest_decisions;
