"""pgmcp-http: a read-only PostgreSQL server for the Model Context Protocol, over HTTP."""

__all__ = ["SERVICE_NAME", "__version__"]

__version__ = "1.0.0"
SERVICE_NAME = "postgres-mcp-server"
