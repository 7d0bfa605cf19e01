"""Version 1; the modules here are generated from inference.proto by proto/generate.py."""
