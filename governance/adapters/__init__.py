"""Adapters that implement governance's ports (in memory for tests, PostgreSQL for the service)."""
