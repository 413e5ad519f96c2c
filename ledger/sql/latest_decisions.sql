-- latest_decisions: the latest version of each decision, complete months only
-- (grain: company_id x user_id x month). Every snapshot_versions column; `account_decisions` is
-- its published projection.
CREATE OR REPLACE VIEW latest_decisions AS
SELECT s.*
FROM snapshot_versions AS s
WHERE s.month IN (SELECT month FROM month_completions)
QUALIFY row_number() OVER (PARTITION BY s.company_id, s.user_id, s.month ORDER BY s.version DESC) = 1;
