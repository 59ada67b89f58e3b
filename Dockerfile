# syntax=docker/dockerfile:1
# Muster for production: `docker compose up` (see compose.yaml) runs it against PostgreSQL 16.
# Without DATABASE_URL the image falls back to the embedded PostgreSQL under MUSTER_DATA_DIR.

# Build stage: Muster and its dependencies (all binary wheels) in a virtualenv.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/muster
COPY . .
RUN /opt/muster/bin/pip install --no-cache-dir .

# Runtime stage: only the virtualenv, run by an unprivileged user.
FROM python:3.11-slim
ENV PATH=/opt/muster/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MUSTER_HOST=0.0.0.0 \
    MUSTER_PORT=8080 \
    MUSTER_DATA_DIR=/var/lib/muster \
    MUSTER_LOG_FORMAT=json
RUN groupadd --system --gid 10001 muster \
    && useradd --system --uid 10001 --gid muster --home-dir /var/lib/muster --create-home \
       --shell /usr/sbin/nologin muster
COPY --from=build /opt/muster /opt/muster
USER 10001:10001
WORKDIR /var/lib/muster
VOLUME ["/var/lib/muster"]
EXPOSE 8080
# Liveness only (the process answers); /readyz is for the orchestrator's readiness probe.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('MUSTER_PORT', '8080') + '/healthz', timeout=4)"]
# `muster serve` drains requests, closes the pool and stops an embedded server on SIGTERM.
STOPSIGNAL SIGTERM
CMD ["muster", "serve", "--host", "0.0.0.0"]
