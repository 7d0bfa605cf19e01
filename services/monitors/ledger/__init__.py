"""The event ledger: predictions and radiologists' reads in PostgreSQL, each exactly once.

``python -m services.monitors.ledger`` runs the writer (a consumer group over the predictions and reviews
topics); :mod:`services.monitors.ledger.queries` is what monitors and governance read windows through.
"""
