"""Contracts of the governance control plane."""
