"""The governance board's web dashboard: server-rendered pages over the governance and monitoring APIs."""
