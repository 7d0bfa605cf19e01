"""The local real stack: Apache Kafka (KRaft), PostgreSQL and Triton on loopback, without Docker.

`radguard stack up|down|status|logs|env` drives :class:`stack.manager.Stack`; the test suite uses the
same class, so what the tests talk to is what a developer runs.
"""
