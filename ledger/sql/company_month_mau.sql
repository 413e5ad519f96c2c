-- company_month_mau: the daily MAU series of each company_month version (grain: company_id x month x version x day).
-- Append-only; `mau_daily` shows the latest version of complete months.
CREATE TABLE IF NOT EXISTS company_month_mau (
    company_id VARCHAR NOT NULL,
    month VARCHAR NOT NULL,
    version INTEGER NOT NULL,
    day DATE NOT NULL,
    mau INTEGER NOT NULL
);
