-- billable_users: the billable accounts of complete months (grain: company_id x user_id x month).
-- R13's "export billed users" is this view filtered by company and month.
CREATE OR REPLACE VIEW billable_users AS
SELECT *
FROM account_decisions
WHERE billable;
