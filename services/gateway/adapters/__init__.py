"""Adapters of the gateway's ports: Triton, the model repository on disk, Kafka."""
