#!/usr/bin/env bash
# Build the container image and check it as the README's container steps use it:
#   - `closedloop --help` runs, as uid 999;
#   - `closedloop init` run in the image writes a config folder that the image then reads
#     mounted read-only at /etc/closedloop, with the ledger on a volume at /var/lib/closedloop;
#   - one `sync --once` against the sandbox (started from the image too) succeeds;
#   - `closedloop serve` answers /healthz;
#   - the image size is printed (goal: 250 MB or less).
#
# Engine: docker when a Docker engine answers, else buildah (`bud --isolation chroot`; checks run
# with `buildah run`, since podman's runtime needs cgroups that such machines may not give).
# Missing buildah/debootstrap are installed with apt-get (as root).
#
# Base image: BASE_IMAGE when set (e.g. python:3.11-slim from a registry you can reach).
# Otherwise a local Debian bookworm base with python3 is made with debootstrap from the Debian
# mirror apt already uses (CLOSEDLOOP_DEBIAN_MIRROR overrides it), trimmed (no docs, man pages,
# locales or apt lists), cached as a tarball under ${XDG_CACHE_HOME:-$HOME/.cache}/closedloop
# and imported into buildah/docker: later runs skip debootstrap.
#
# The build is offline: the wheels of requirements.lock are made on the host
# (`pip wheel -r requirements.lock`, cached in the same folder) and copied into the build
# context as wheelhouse/, which the Dockerfile installs from with --no-index.
set -euo pipefail
cd "$(dirname "$0")/.."

started=$SECONDS
IMAGE="${CLOSEDLOOP_SMOKE_IMAGE:-localhost/closedloop:smoke}"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/closedloop"
BASE_TAG="localhost/closedloop-base:bookworm-python3"
PYTHON="${PYTHON:-python3}"
# Ports of this check (not the defaults, so a sandbox or service already running is no clash).
SF_PORT=18443 HS_PORT=18081 MK_PORT=18082 SERVE_PORT=18080

say() { printf '[container-smoke %4ss] %s\n' "$((SECONDS - started))" "$*"; }
die() {
    printf 'container-smoke: %s\n' "$*" >&2
    exit 1
}

# --- the engine ------------------------------------------------------------------------------
if command -v docker > /dev/null && docker info > /dev/null 2>&1; then
    ENGINE=docker
else
    ENGINE=buildah
    missing=()
    command -v buildah > /dev/null || missing+=(buildah)
    if [ -z "${BASE_IMAGE:-}" ] && ! command -v debootstrap > /dev/null; then
        missing+=(debootstrap)
    fi
    if [ "${#missing[@]}" -gt 0 ]; then
        [ "$(id -u)" = 0 ] || die "install ${missing[*]} (apt-get install ${missing[*]}) or run as root"
        say "installing ${missing[*]} with apt-get"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${missing[@]}" > /dev/null
    fi
fi
say "engine: $ENGINE"

mkdir -p "$CACHE"
workdir="$(mktemp -d)"
containers=()
made_wheelhouse=""
cleanup() {
    local status=$?
    if [ "$ENGINE" = buildah ]; then
        for c in "${containers[@]}"; do buildah rm "$c" > /dev/null 2>&1 || true; done
    fi
    rm -rf "$workdir"
    [ -z "$made_wheelhouse" ] || rm -rf wheelhouse
    exit "$status"
}
trap cleanup EXIT

# --- the base image --------------------------------------------------------------------------
debian_mirror() {
    if [ -n "${CLOSEDLOOP_DEBIAN_MIRROR:-}" ]; then
        echo "$CLOSEDLOOP_DEBIAN_MIRROR"
        return
    fi
    # The first Debian (not -security) URI of apt's own sources (deb822 or one-line style).
    cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2> /dev/null \
        | sed -nE -e 's/^URIs:[[:space:]]*//p' -e 's/^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?//p' \
        | tr ' ' '\n' | grep -E '^(https?|file)://' | grep -v -- '-security' | head -n1 || true
}

make_base_tarball() {
    local tarball="$1" root="$workdir/rootfs"
    say "debootstrap bookworm (python3, python3-venv) from the Debian mirror apt uses"
    local mirror
    mirror="$(debian_mirror)"
    [ -n "$mirror" ] || die "no Debian mirror in apt's sources: set CLOSEDLOOP_DEBIAN_MIRROR"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
        bookworm "$root" "$mirror" > "$workdir/debootstrap.log" 2>&1 \
        || {
            tail -20 "$workdir/debootstrap.log" >&2
            die "debootstrap failed"
        }
    # What a runtime base does not need: package caches and lists, docs, man pages, locales,
    # glibc's iconv modules (Python has its own codecs).
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
        "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
        "$root"/usr/share/locale/* "$root"/usr/lib/x86_64-linux-gnu/gconv/*.so \
        "$root"/usr/lib/python3.11/{idlelib,lib2to3,pydoc_data,turtledemo} \
        "$root"/var/log/*.log "$root"/var/cache/debconf/*-old
    tar -C "$root" -cf "$tarball.part" .
    mv "$tarball.part" "$tarball"
    rm -rf "$root"
}

import_base() {
    local tarball="$1"
    if [ "$ENGINE" = docker ]; then
        docker import "$tarball" "$BASE_TAG" > /dev/null
    else
        local c
        c="$(buildah from scratch)"
        containers+=("$c")
        buildah add "$c" "$tarball" / > /dev/null
        buildah config --cmd /bin/bash "$c"
        buildah commit --quiet "$c" "$BASE_TAG" > /dev/null
    fi
}

image_exists() {
    if [ "$ENGINE" = docker ]; then
        docker image inspect "$1" > /dev/null 2>&1
    else
        buildah inspect --type image "$1" > /dev/null 2>&1
    fi
}

if [ -n "${BASE_IMAGE:-}" ]; then
    base="$BASE_IMAGE"
else
    base="$BASE_TAG"
    tarball="$CACHE/debian-bookworm-python3.tar"
    if ! image_exists "$base"; then
        [ -s "$tarball" ] || make_base_tarball "$tarball"
        say "importing the base from $tarball"
        import_base "$tarball"
    fi
fi
say "base image: $base"

# --- the wheelhouse and the build ------------------------------------------------------------
say "wheels of requirements.lock (cached in $CACHE/wheelhouse)"
"$PYTHON" -m pip wheel --quiet --disable-pip-version-check -r requirements.lock \
    -w "$CACHE/wheelhouse" 2> "$workdir/pip.log" || {
    grep -v 'is ignored' "$workdir/pip.log" >&2 || true
    die "pip wheel failed"
}
[ ! -e wheelhouse ] || die "remove ./wheelhouse first (the smoke makes its own)"
mkdir wheelhouse
made_wheelhouse=1
# Only the pinned wheels (the cache may hold older ones).
"$PYTHON" - "$CACHE/wheelhouse" wheelhouse <<'PY'
import re, shutil, sys
from pathlib import Path

src, dst = Path(sys.argv[1]), Path(sys.argv[2])
norm = lambda n: re.sub(r"[-_.]+", "_", n).lower()
pins = {}
for line in Path("requirements.lock").read_text().splitlines():
    if "==" in line and not line.startswith("#"):
        name, version = line.split("==")
        pins[norm(name)] = version.strip()
for wheel in src.glob("*.whl"):
    name, version = wheel.name.split("-")[:2]
    if pins.get(norm(name)) == version:
        shutil.copy2(wheel, dst / wheel.name)
PY

say "building $IMAGE"
if [ "$ENGINE" = docker ]; then
    docker build --quiet --build-arg BASE_IMAGE="$base" -t "$IMAGE" . > "$workdir/build.log" 2>&1
else
    buildah bud --isolation chroot --format docker --layers --build-arg BASE_IMAGE="$base" \
        -t "$IMAGE" . > "$workdir/build.log" 2>&1
fi || {
    tail -30 "$workdir/build.log" >&2
    die "the image build failed"
}
rm -rf wheelhouse
say "built $IMAGE"

# --- running it ------------------------------------------------------------------------------
# run_image MOUNT... -- [--user UID:GID --] COMMAND...: COMMAND in a fresh container of the
# image (host network), as the image's user unless --user is given.
run_image() {
    local options=()
    while [ "$1" != -- ]; do
        options+=(-v "$1")
        shift
    done
    shift
    if [ "$1" = --user ]; then
        options+=(--user "$2")
        shift 3
    fi
    if [ "$ENGINE" = docker ]; then
        docker run --rm --network host "${options[@]}" --entrypoint "$1" "$IMAGE" "${@:2}"
    else
        # Removed here, not by the exit trap: run_image may run in a $(...) subshell.
        local c status=0
        c="$(buildah from --quiet "$IMAGE")"
        buildah run --isolation chroot "${options[@]}" "$c" -- "$@" || status=$?
        buildah rm "$c" > /dev/null
        return "$status"
    fi
}

say "closedloop --help, and the user it runs as"
run_image -- closedloop --help > "$workdir/help.txt" || die "closedloop --help failed"
grep -q "Usage" "$workdir/help.txt" || die "closedloop --help printed no usage"
uid="$(run_image -- id -u)"
[ "$uid" = 999 ] || die "the image runs as uid $uid, not 999"

# The README's route: `init` in the image as the folder's owner (a user other than 999) writes
# the config folder, its secrets are then given to uid 999, and the folder is mounted read-only;
# the ledger lives on its own volume.
config="$workdir/config" ledger="$workdir/ledger" owner=4242
mkdir -p "$config" "$ledger"
chown "$owner:$owner" "$config"
chown 999:999 "$ledger"
say "closedloop init in the image"
run_image "$config:/etc/closedloop" -- --user "$owner:$owner" -- \
    closedloop init /etc/closedloop/closedloop.yaml > "$workdir/init.log" 2>&1 || {
    cat "$workdir/init.log" >&2
    die "closedloop init failed"
}
[ -f "$config/mappings/marketo-salesforce.yaml" ] || die "init copied no mappings"
chown -R 999:999 "$config/.closedloop"
# This check's own ports, and the sandbox's CA (written when it starts) from the ledger volume
# since the config folder is read-only.
sed -i -e "s#127.0.0.1:8443#127.0.0.1:$SF_PORT#" -e "s#127.0.0.1:8081#127.0.0.1:$HS_PORT#" \
    -e "s#127.0.0.1:8082#127.0.0.1:$MK_PORT#" \
    -e "s#ca_bundle: .closedloop/sandbox-ca.pem#ca_bundle: /var/lib/closedloop/sandbox-ca.pem#" \
    "$config/closedloop.yaml"

cat > "$ledger/smoke.sh" <<EOF
set -eu
closedloop sandbox serve --port-salesforce $SF_PORT --port-hubspot $HS_PORT \
    --port-marketo $MK_PORT --ca-file /var/lib/closedloop/sandbox-ca.pem > sandbox.log 2>&1 &
sandbox=\$!
trap 'kill \$sandbox 2> /dev/null || true' EXIT
wait_for() {
    i=0
    until python3 -c "import urllib.request, sys; urllib.request.urlopen(sys.argv[1], timeout=2)" "\$1" 2> /dev/null; do
        i=\$((i + 1))
        [ \$i -lt 120 ] || { echo "no answer from \$1" >&2; return 1; }
        sleep 0.5
    done
}
wait_for http://127.0.0.1:$HS_PORT/__sandbox/counters || { cat sandbox.log >&2; exit 1; }
# The README's first steps against a CRM: check it (HubSpot: --fix creates closedloop's own
# properties), then check the whole config.
for crm in \$(python3 -c "
import yaml
connections = yaml.safe_load(open('/etc/closedloop/closedloop.yaml'))['connections']
print(' '.join(sorted({c['type'] for c in connections.values()} & {'salesforce', 'hubspot'})))"); do
    if [ "\$crm" = hubspot ]; then closedloop check hubspot --fix; else closedloop check "\$crm"; fi
done
closedloop config check
# One pipeline that reads the sandbox's Salesforce over HTTPS and writes the ledger.
pipeline=\$(python3 -c "
import yaml
pipelines = yaml.safe_load(open('/etc/closedloop/closedloop.yaml'))['pipelines']
print(next(n for n, p in pipelines.items() if p.get('kind') == 'reconcile'))")
closedloop sync --once --pipeline "\$pipeline"
closedloop serve --host 127.0.0.1 --port $SERVE_PORT > serve.log 2>&1 &
serve=\$!
wait_for http://127.0.0.1:$SERVE_PORT/healthz || { cat serve.log >&2; exit 1; }
echo "healthz: ok"
kill -TERM \$serve
wait \$serve || { cat serve.log >&2; exit 1; }
EOF
chown -R 999:999 "$ledger"
say "sandbox, config check, sync --once and serve /healthz in the image"
run_image "$config:/etc/closedloop:ro" "$ledger:/var/lib/closedloop" -- \
    sh /var/lib/closedloop/smoke.sh || die "the run in the image failed"

# --- size ------------------------------------------------------------------------------------
if [ "$ENGINE" = docker ]; then
    bytes="$(docker image inspect --format '{{.Size}}' "$IMAGE")"
else
    bytes="$(buildah inspect --type image --format '{{.Size}}' "$IMAGE" 2> /dev/null || true)"
    case "$bytes" in
        '' | *[!0-9]*) bytes="$(buildah images --noheading --format '{{.Size}}' "$IMAGE")" ;;
    esac
fi
case "$bytes" in
    *[!0-9]*) size="$bytes" ;;
    *) size="$((bytes / 1000000)) MB" ;;
esac
say "image $IMAGE on $base: $size (goal: 250 MB or less)"
say "container smoke passed in $((SECONDS - started)) s"
