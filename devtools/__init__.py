"""Developer tooling: the local Kafka broker, the workload generator and the demo. Not the runtime."""
