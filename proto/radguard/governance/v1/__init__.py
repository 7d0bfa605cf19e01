"""Version 1; the modules here are generated from governance.proto by proto/generate.py."""
