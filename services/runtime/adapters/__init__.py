"""Protobuf translations that several services share."""
