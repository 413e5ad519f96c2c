"""Faust glue and the Kafka plumbing around it: local broker, topics, publisher, worker."""
