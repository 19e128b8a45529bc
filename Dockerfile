# syntax=docker/dockerfile:1
# closedloop as a scheduled container: `docker run closedloop` runs `closedloop serve`.
# BASE_IMAGE can point at a locally provided Debian-based Python image.
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY connectors ./connectors
COPY sync ./sync
RUN python -m venv /opt/closedloop \
    && /opt/closedloop/bin/pip install --upgrade pip setuptools wheel \
    && /opt/closedloop/bin/pip install .

FROM ${BASE_IMAGE} AS runtime
RUN groupadd --system closedloop \
    && useradd --system --gid closedloop --home-dir /var/lib/closedloop --create-home closedloop
COPY --from=build /opt/closedloop /opt/closedloop
COPY mappings /etc/closedloop/mappings
ENV PATH=/opt/closedloop/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    CLOSEDLOOP_CONFIG=/etc/closedloop/closedloop.yaml \
    CLOSEDLOOP_MAPPINGS_DIR=/etc/closedloop/mappings \
    CLOSEDLOOP_DATABASE_URL=sqlite:////var/lib/closedloop/closedloop.db
USER closedloop
WORKDIR /var/lib/closedloop
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4).status == 200 else 1)"]
ENTRYPOINT ["closedloop"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
