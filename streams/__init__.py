"""The Kafka runtime: settings, topics, the publisher, the worker (router, fold, close), the sink and archive consumers."""
