"""The monitors: Kafka consumers that keep the event ledger and watch the models through it."""
