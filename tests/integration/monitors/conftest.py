"""Fixtures of the monitors' integration tests: the ledger tests' fresh database and topics, reused."""

from tests.integration.ledger.conftest import ledger_dsn, topics

__all__ = ["ledger_dsn", "topics"]
