"""lancelot on vantage6 5.x (sessions, HQ, Kubernetes nodes): the adapter, a process harness, the mock set-up."""
