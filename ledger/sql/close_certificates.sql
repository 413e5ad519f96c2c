-- close_certificates: what each close counted and whether the stored snapshot matches it (grain: month).
-- Counts are sums over the latest partition_done of every partition. reported_checksum combines
-- the partitions' checksums (sha256 of their concatenation in partition order); sink_checksum is
-- recomputed the same way from the stored rows: per partition, sha256 of the sorted digests of
-- the latest close version (amend_reason IS NULL) of each account. Equal when all is well.
CREATE OR REPLACE VIEW close_certificates AS
WITH reports AS (
    SELECT *
    FROM partition_reports
    QUALIFY row_number() OVER (PARTITION BY month, partition ORDER BY batch_id DESC, kafka_offset DESC) = 1
),
closed AS (
    SELECT month, partition, digest
    FROM snapshot_versions
    WHERE amend_reason IS NULL
    QUALIFY row_number() OVER (PARTITION BY company_id, user_id, month ORDER BY version DESC) = 1
),
sink_parts AS (
    SELECT r.month, r.partition, sha256(coalesce(string_agg(c.digest, '' ORDER BY c.digest), '')) AS checksum
    FROM reports AS r
    LEFT JOIN closed AS c ON c.month = r.month AND c.partition = r.partition
    GROUP BY r.month, r.partition
),
sink_month AS (
    SELECT month, sha256(string_agg(checksum, '' ORDER BY partition)) AS sink_checksum
    FROM sink_parts
    GROUP BY month
),
decisions AS (
    SELECT month, count(*) AS decisions, count(*) FILTER (WHERE billable) AS billable,
           count(*) FILTER (WHERE charged) AS charged,
           count(*) FILTER (WHERE version > 1) AS amended
    FROM latest_decisions
    GROUP BY month
)
SELECT
    r.month,
    c.month IS NOT NULL AS complete,
    c.completed_at,
    count(*)::INTEGER AS partitions_reported,
    max(r.partitions)::INTEGER AS partitions_expected,
    sum(r.events_counted)::BIGINT AS events_counted,
    sum(r.rejected)::BIGINT AS rejected,
    sum(r.duplicates_ignored)::BIGINT AS duplicates_ignored,
    sum(r.late_since_close)::BIGINT AS late_since_close,
    sum(r.accounts)::BIGINT AS decisions_reported,
    coalesce(any_value(d.decisions), 0)::BIGINT AS decisions,
    coalesce(any_value(d.billable), 0)::BIGINT AS billable,
    coalesce(any_value(d.charged), 0)::BIGINT AS charged,
    coalesce(any_value(d.amended), 0)::BIGINT AS amended,
    sha256(string_agg(r.checksum, '' ORDER BY r.partition)) AS reported_checksum,
    any_value(s.sink_checksum) AS sink_checksum,
    any_value(s.sink_checksum) = sha256(string_agg(r.checksum, '' ORDER BY r.partition)) AS checksums_match
FROM reports AS r
LEFT JOIN month_completions AS c ON c.month = r.month
LEFT JOIN sink_month AS s ON s.month = r.month
LEFT JOIN decisions AS d ON d.month = r.month
GROUP BY r.month, c.month, c.completed_at;
