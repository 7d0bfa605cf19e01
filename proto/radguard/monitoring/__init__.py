"""Contracts of the monitor service's read-only query API (findings, metric series, reliability diagrams)."""
