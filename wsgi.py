"""WSGI entry point: ``gunicorn -c gunicorn.conf.py wsgi:app``."""

from pgmcp_http.app import create_app
from pgmcp_http.config import settings_or_exit

app = create_app(settings_or_exit())
