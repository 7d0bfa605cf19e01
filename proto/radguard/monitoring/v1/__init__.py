"""Version 1; the modules here are generated from monitoring.proto by proto/generate.py."""
