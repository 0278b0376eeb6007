# pgmcp-http: the PostgreSQL MCP server, as one container image.
#
#   docker build -t tas-mcp/postgres-mcp-server:1.0.0 .
#   docker run --rm --read-only --tmpfs /tmp -p 3401:3401 \
#     -e DATABASE_URL=postgresql://mcp_readonly:...@db:5432/app tas-mcp/postgres-mcp-server:1.0.0
#
# Two stages: the first installs the pinned requirements into a virtualenv and
# compiles every module; the second copies only that virtualenv and the
# application onto the same slim Python, so no compiler, pip cache or test
# dependency reaches the image.
#
# Built to run with a read-only root filesystem as a non-root user: the only
# place anything is written is /tmp (a tmpfs in compose and Kubernetes, a task
# volume on ECS): the Prometheus multiprocess directory (a private directory
# made there at start), gunicorn's worker heartbeat files (TMPDIR) and its
# control socket (HOME/.gunicorn/gunicorn.ctl). Python writes no bytecode at
# run time; it is compiled here. tests/test_deploy_image.py runs the same
# command, with the same environment, on a read-only root with a fresh tmpfs
# on /tmp, as an unprivileged user.
#
# gunicorn is PID 1 (exec form, no shell): SIGTERM reaches its master, which
# stops accepting, lets in-flight calls finish for up to graceful_timeout
# (25 s, gunicorn.conf.py), closes each worker's database pool and exits 0.
# It reaps its own workers, and the server starts no other processes, so no
# separate init is needed. The platform's grace period must exceed 25 s (see
# docs/deploy/ for each platform): docker stop -t 30, compose stop_grace_period 30s,
# ECS stopTimeout 35, Kubernetes terminationGracePeriodSeconds 35; Cloud Run
# allows 10 s, so cloudrun/service.yaml lowers the graceful timeout to 8 s.

FROM python:3.11.14-slim-bookworm AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

# Wheels only (psycopg2-binary, pglast, orjson... all ship manylinux wheels): a
# package that would need compiling fails here rather than pulling in gcc.
COPY requirements.txt /tmp/requirements.txt
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --only-binary=:all: --no-compile -r /tmp/requirements.txt

WORKDIR /app
COPY wsgi.py gunicorn.conf.py ./
COPY pgmcp_http/ ./pgmcp_http/
# The root filesystem is read-only at run time: compile now, once.
RUN python -m compileall -q -j 0 /app /opt/venv/lib


FROM python:3.11.14-slim-bookworm

# A fixed, unprivileged uid/gid (Kubernetes runAsUser and ECS "user" name it).
RUN groupadd --system --gid 10001 pgmcp \
    && useradd --system --uid 10001 --gid pgmcp --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin pgmcp

COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app

# HOME and TMPDIR on /tmp: the only writable place (gunicorn puts its control
# socket in $HOME/.gunicorn). PROMETHEUS_MULTIPROC_DIR is left unset: the
# master makes a private directory in TMPDIR, empty at every start. PORT is
# not set here: the server defaults to 3401, and an image-level PORT would
# silently override HEALTH_PORT, the guide's name for it.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp

WORKDIR /app
USER 10001:10001
EXPOSE 3401

# ECS bind-mount volumes (Fargate's only writable storage with a read-only root)
# copy the permissions of an image path declared as a VOLUME: /tmp stays 1777,
# so the non-root user can write there. Compose and Kubernetes mount a tmpfs
# or emptyDir over it instead.
VOLUME ["/tmp"]

# Liveness only (never the database: a PostgreSQL outage must not get every
# container replaced). No curl in a slim image: Python's urllib, honouring
# PORT (and HEALTH_PORT, the guide's name) as the server does; any non-2xx or
# a refused connection makes urlopen raise, so the exit status is 1.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/livez' % (os.environ.get('PORT') or os.environ.get('HEALTH_PORT') or '3401'), timeout=4)"]

CMD ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
