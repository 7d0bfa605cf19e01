"""Version 1; the modules here are generated from feedback.proto by proto/generate.py."""
