"""Contracts of the inference gateway hospital systems call."""
