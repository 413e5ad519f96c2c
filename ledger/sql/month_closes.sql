-- month_closes: where each month's close stands (grain: month).
-- partitions_reported counts distinct partitions that sent partition_done; complete is true once
-- the month is in month_completions (all partitions reported and all they reported is stored).
CREATE OR REPLACE VIEW month_closes AS
WITH reports AS (
    SELECT month, partition, max(partitions) AS partitions, min(received_at) AS first_received_at
    FROM partition_reports
    GROUP BY month, partition
)
SELECT
    r.month,
    count(*)::INTEGER AS partitions_reported,
    max(r.partitions)::INTEGER AS partitions_expected,
    c.month IS NOT NULL AS complete,
    c.completed_at
FROM reports AS r
LEFT JOIN month_completions AS c ON c.month = r.month
GROUP BY r.month, c.month, c.completed_at;
