"""When a month becomes complete, and so visible to analysts and invoiced.

A month is complete when every partition reported `partition_done` AND the decisions and
company_months each report counted (for its partition) are stored: the reports and the decisions
can sit on different topic partitions, so "all reports seen" alone could expose half a month.
Completion is a row in `month_completions`, written in the transaction that completed it.
"""

from __future__ import annotations

import duckdb

from ledger.batch import Batch
from ledger.connection import run
from ledger.tables import insert_rows
from ledger.versions import amended

_NEWLY_COMPLETE = """
WITH reports AS (
    SELECT month, partition, partitions, companies, accounts
    FROM partition_reports
    WHERE month NOT IN (SELECT month FROM month_completions)
    QUALIFY row_number() OVER (PARTITION BY month, partition ORDER BY batch_id DESC, kafka_offset DESC) = 1
),
stored AS (
    SELECT month, partition, count(*) AS n
    FROM (SELECT {keys} FROM snapshot_versions WHERE month IN (SELECT month FROM reports))
    GROUP BY month, partition
),
cms AS (
    SELECT month, partition, count(*) AS n
    FROM (SELECT DISTINCT month, partition, company_id FROM company_month_versions
          WHERE month IN (SELECT month FROM reports))
    GROUP BY month, partition
)
SELECT r.month, max(r.partitions) AS partitions
FROM reports AS r
LEFT JOIN stored AS s ON s.month = r.month AND s.partition = r.partition
LEFT JOIN cms AS c ON c.month = r.month AND c.partition = r.partition
GROUP BY r.month
HAVING count(*) >= max(r.partitions)
   AND bool_and(coalesce(s.n, 0) >= r.accounts AND coalesce(c.n, 0) >= r.companies)
ORDER BY r.month
"""


# The first condition of _NEWLY_COMPLETE alone, on the small partition_reports table: until some
# month has a report from every partition, no month can complete and the counts over the stored
# decisions (a scan of the month's rows, every batch of a close) are not needed.
_ALL_REPORTED = """
WITH reports AS (
    SELECT month, partition, partitions
    FROM partition_reports
    WHERE month NOT IN (SELECT month FROM month_completions)
    QUALIFY row_number() OVER (PARTITION BY month, partition ORDER BY batch_id DESC, kafka_offset DESC) = 1
)
SELECT count(*) FROM (SELECT month FROM reports GROUP BY month HAVING count(*) >= max(partitions))
"""


_OPEN_MONTHS = "SELECT month FROM partition_reports WHERE month NOT IN (SELECT month FROM month_completions)"


def complete_months(con: duckdb.DuckDBPyConnection, batch: Batch) -> list[str]:
    """Months that became complete with this batch, recorded in month_completions."""
    if not run(con, _ALL_REPORTED)[0][0]:
        return []
    # no amendment yet: one row per decision key (ledger.versions.amended), so rows count keys
    keys = "DISTINCT month, partition, company_id, user_id" if amended(con, _OPEN_MONTHS) else "month, partition"
    done = run(con, _NEWLY_COMPLETE.format(keys=keys))
    insert_rows(
        con,
        "month_completions",
        [{"month": m, "partitions": p, "completed_at": batch.now, "batch_id": batch.batch_id} for m, p in done],
    )
    return [m for m, _ in done]
