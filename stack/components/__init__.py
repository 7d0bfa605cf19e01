"""One module per real server of the local stack."""
