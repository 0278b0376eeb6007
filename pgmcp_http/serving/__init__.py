"""The gunicorn worker's machinery: the guarded gthread worker, its fast lane for small requests, and the watcher
that cancels a statement when its client hangs up. The WSGI routes live in :mod:`pgmcp_http.web`."""
