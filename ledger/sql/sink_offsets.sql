-- sink_offsets: the sink's Kafka position (grain: topic x partition).
-- `next_offset` is the first offset NOT yet written; it is updated in the same transaction as the
-- rows written from the messages before it, so a restart resumes exactly there.
CREATE TABLE IF NOT EXISTS sink_offsets (
    topic VARCHAR NOT NULL,
    partition INTEGER NOT NULL,
    next_offset BIGINT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (topic, partition)
);
