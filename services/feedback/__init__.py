"""The feedback service: radiologists' final reads, stored once each and published as ReadEvents."""
