"""gunicorn settings, derived from the same validated configuration as the app.

Worker class: ``gthread`` (threads per worker from THREADS): a tool call spends
most of its time waiting on PostgreSQL, and threads let a worker serve other
requests meanwhile without the monkey-patching an async worker would need for
psycopg2. It is subclassed (:mod:`pgmcp_http.serving.worker`) so that threads only
ever parse complete requests (slow senders wait on the event loop and are cut
off after REQUEST_READ_TIMEOUT) and so that requests beyond
REQUEST_QUEUE_LIMIT get 503 at once. The app is preloaded in the master
(config read once, session key shared by all workers); each worker opens its
own pool after fork.

Metrics: PROMETHEUS_MULTIPROC_DIR is prepared here, at the top of the master,
because prometheus_client picks its multiprocess mode once, when the app
imports it during preload; ``child_exit`` then drops a dead worker's live
gauges so the container's figures never count it.
"""

from __future__ import annotations

import threading
from typing import Any

from pgmcp_http.config import settings_or_exit
from pgmcp_http.observability.metrics_dir import mark_worker_dead, prepare_metrics_dir

_settings = settings_or_exit()
prepare_metrics_dir(_settings.metrics_dir)  # before the app (and prometheus_client) is imported

bind = f"{_settings.host}:{_settings.port}"
workers = _settings.workers
threads = _settings.threads
worker_class = "pgmcp_http.serving.worker.GuardedThreadWorker"  # gthread, guarded against slow and bursty clients
preload_app = True
timeout = max(30, _settings.query_timeout_ms // 1000 + 15)
graceful_timeout = 25
keepalive = 75
accesslog = None
errorlog = "-"
loglevel = _settings.log_level.lower()
limit_request_line = 8190
limit_request_fields = 100
proc_name = "pgmcp-http"


def post_fork(server: Any, worker: Any) -> None:
    """Create this worker's database pool now (it connects lazily), never in the master."""
    runtime = worker.app.wsgi().extensions["pgmcp"]
    runtime.database()
    runtime.start_worker()
    if worker.age == 1:  # the first worker of this server checks the role once, off the request path
        threading.Thread(target=runtime.audit_role, name="pgmcp-role-audit", daemon=True).start()
    # FEDERATION_URL: one worker at a time registers this server in the background (never blocks serving).
    from pgmcp_http.federation import start_registrar

    start_registrar(runtime.settings, [spec.name for spec in runtime.toolbox.specs()])


def when_ready(server: Any) -> None:
    """Count the master's memory in the container's figures."""
    server.app.wsgi().extensions["pgmcp"].start_master()


def child_exit(server: Any, worker: Any) -> None:
    """A worker is gone (any cause, SIGKILL included): its pool and memory stop counting at once."""
    mark_worker_dead(worker.pid)


def worker_exit(server: Any, worker: Any) -> None:
    """Close this worker's connections on a graceful exit."""
    worker.app.wsgi().extensions["pgmcp"].close()
