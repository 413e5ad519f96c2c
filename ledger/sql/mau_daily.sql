-- mau_daily: R14's reports MAU per company and local day (grain: company_id x month x day),
-- from the latest company_month version of each complete month.
CREATE OR REPLACE VIEW mau_daily AS
SELECT m.company_id, m.month, m.day, m.mau
FROM company_month_mau AS m
JOIN (
    SELECT company_id, month, max(version) AS version
    FROM company_month_versions
    WHERE month IN (SELECT month FROM month_completions)
    GROUP BY company_id, month
) AS latest USING (company_id, month, version);
