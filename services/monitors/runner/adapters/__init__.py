"""Adapters of the monitor runner: PostgreSQL findings table, Kafka findings topic, Evidently reports."""
