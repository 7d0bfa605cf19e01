"""Version 1; the modules here are generated from events.proto by proto/generate.py."""
