"""The ``radguard`` command line: the operator's composition root."""
