"""Shared plumbing for every radguard process: gRPC server, errors, config, telemetry, Kafka, PostgreSQL.

Import the submodule you need (``services.runtime.server``, ``services.runtime.kafka`` ...); this package
re-exports nothing so that importing one concern does not pull in the clients of all the others.
"""
