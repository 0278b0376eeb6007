"""WSGI entry point: ``gunicorn -c gunicorn.conf.py wsgi:app``.

Building the app checks what the settings alone cannot (a DISABLE_TOOLS entry
that names no built-in tool; TOOLS_FILE, read and planned here in the gunicorn
master, which preloads the app): a mistake stops start-up with one line, like a
bad variable.
"""

from pgmcp_http.app import create_app
from pgmcp_http.config import ConfigError, settings_or_exit

try:
    app = create_app(settings_or_exit())
except ConfigError as exc:
    raise SystemExit(f"pgmcp-http: configuration error: {exc}") from None
