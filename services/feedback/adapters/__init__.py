"""The feedback service's adapters: PostgreSQL (reads, outbox, ledger lookup) and the Kafka outbox relay."""
