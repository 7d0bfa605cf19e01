"""Contracts of the feedback service that records radiologists' reads."""
