"""Kafka payload contracts."""
