"""The Parquet archive of every accepted event, one module per concept.

- `replay.archive.layout`: where things are (month/bucket directories, file names, manifests);
- `replay.archive.durable`: how a file is made durable (tmp name, fsync, rename);
- `replay.archive.writer`: the flush of accepted and rejected rows, exactly once per Kafka offset;
- `replay.archive.compaction`: merging small files without losing or doubling a row;
- `replay.archive.reader`: reading the archive back as rows (deduplicated by event_id).

No Kafka here: `streams/archive_consumer.py` feeds the writer and commits what it returns.
"""
