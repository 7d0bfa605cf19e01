"""The ledger's adapters: asyncpg (batch writer, queries, statistics) and Kafka (end offsets)."""
