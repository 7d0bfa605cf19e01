"""The governance service: the control plane's gRPC edge over the governance library."""
