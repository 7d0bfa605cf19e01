"""The monitor service's read-only query API over its own findings (``radguard.monitoring.v1``).

``store.py`` reads ``monitor_findings`` (SQL only there); ``servicer.py`` translates requests and answers;
the runner process registers the servicer next to its health service.
"""
