# closedloop as a scheduled container: `docker run closedloop` runs `closedloop serve` as uid 999.
#
# BASE_IMAGE: any Debian-based image with python3 (3.11+) and its venv module, such as
# python:3.11-slim (the default) or debian:bookworm with python3-venv installed.
# Dependencies come pinned from requirements.lock. With a wheelhouse/ folder in the build context
# (`pip wheel -r requirements.lock -w wheelhouse`) the build needs no network: it installs with
# --no-index --find-links wheelhouse.
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
COPY . .
# The venv's own python runs everything from here on: plain Debian has python3 but no `python`.
RUN python3 -m venv /opt/closedloop \
    && if [ -d wheelhouse ]; then set -- --no-index --find-links wheelhouse; else set --; fi \
    && /opt/closedloop/bin/python -m pip install --quiet "$@" -r requirements.lock \
    && /opt/closedloop/bin/python -m pip install --quiet "$@" --no-deps --no-build-isolation . \
    && /opt/closedloop/bin/python -m pip uninstall --quiet --yes setuptools wheel pip \
    && find /opt/closedloop \( -name __pycache__ -o -name '*.pyx' -o -name '*.pxd' -o -name '*.pyi' \
        -o -name '*.h' -o -name '*.c' \) -prune -exec rm -rf {} + \
    && /opt/closedloop/bin/python scripts/image_precompile.py \
    && /opt/closedloop/bin/closedloop --help > /dev/null

FROM ${BASE_IMAGE} AS runtime
RUN groupadd --system --gid 999 closedloop \
    && useradd --system --uid 999 --gid 999 --home-dir /var/lib/closedloop --create-home \
        --shell /usr/sbin/nologin closedloop \
    && mkdir -p /etc/closedloop \
    && ln -s /usr/share/closedloop/mappings /etc/closedloop/mappings
COPY --from=build /opt/closedloop /opt/closedloop
COPY mappings /usr/share/closedloop/mappings
# glibc's large-block threshold fixed from the process start (sync.pipelines.memory explains why;
# it sets the same values itself as a run begins, which leaves a few MB more of heap holes).
ENV PATH=/opt/closedloop/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    MALLOC_MMAP_THRESHOLD_=131072 \
    MALLOC_TRIM_THRESHOLD_=131072 \
    CLOSEDLOOP_CONFIG=/etc/closedloop/closedloop.yaml \
    CLOSEDLOOP_MAPPINGS_DIR=/usr/share/closedloop/mappings \
    CLOSEDLOOP_DATABASE_URL=sqlite:////var/lib/closedloop/closedloop.db
USER 999:999
WORKDIR /var/lib/closedloop
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["/opt/closedloop/bin/python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4).status == 200 else 1)"]
ENTRYPOINT ["closedloop"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
