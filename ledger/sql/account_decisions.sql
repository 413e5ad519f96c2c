-- account_decisions: one row per account and complete month, its latest decision
-- (grain: company_id x user_id x month). Exactly the columns `seatledger replay` prints
-- (projections.decide.DECISION_COLUMNS, same names and order). A month appears only once every
-- partition reported it and everything reported is stored: never half a month.
CREATE OR REPLACE VIEW account_decisions AS
SELECT
    company_id,
    user_id,
    month,
    billable,
    charged,
    tier,
    rule,
    reason,
    evidence,
    unit_price_usd,
    ruleset_version
FROM latest_decisions;
