"""Version 1; the modules here are generated from common.proto by proto/generate.py."""
