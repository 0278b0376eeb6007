"""Logs, memory figures and (later) metrics: what operators see of the server."""
