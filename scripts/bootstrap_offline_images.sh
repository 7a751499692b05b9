#!/usr/bin/env bash
# Build the two base images lancelot's Dockerfiles start from, without any container registry:
#
#   docker.io/library/debian:bookworm              debootstrap --variant=minbase + docker import
#   docker.io/library/python:3.10-slim-bookworm    that rootfs + a local CPython 3.10 build
#   (--python-version 3.13: python:3.13-slim-bookworm, the base of lancelot's vantage6 5.x images)
#
# For node operators on air-gapped hosts (and CI machines) that can reach a Debian mirror but not
# Docker Hub. `FROM python:3.10-slim-bookworm` then works unchanged. Idempotent: an image that
# already exists is left alone (use --force to rebuild).
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/bootstrap_offline_images.sh [options]

Builds, without a container registry,
  docker.io/library/debian:bookworm            (also tagged debian:bookworm-slim)
      a debootstrap --variant=minbase rootfs imported with `docker import`
  docker.io/library/python:X.Y-slim-bookworm   (also tagged python:X.Y-slim; X.Y = --python-version)
      that image plus a CPython X.Y build found on this host (pip via ensurepip)
Images that already exist are skipped.

Options
  --python-version X.Y 3.10 (default; vantage6 4.15 images) or 3.13 (vantage6 5.x images)
  --python-prefix DIR  install prefix of a CPython X.Y built on a Debian bookworm (glibc 2.36)
                       host; default: $PYTHON310_PREFIX (3.10) or $PYTHON313_PREFIX (3.13), else the
                       newest pyenv X.Y.z, else /usr/local if it holds pythonX.Y
  --mirror URL         Debian mirror (default: $DEBIAN_MIRROR or http://deb.debian.org/debian)
  --only debian|python build only one of the two images
  --no-local-ca        do not copy this host's extra CA certificates into the image
  --force              rebuild images that already exist
  --keep-work          keep the temporary rootfs/build folder (for debugging)
  -h, --help           this text

Environment
  DOCKER_HOST          engine to build in (default: the docker CLI's default)
  DOCKER               docker CLI to use (default: docker)

Extra CA certificates: if /usr/local/share/ca-certificates/*.crt exist (a TLS-intercepting proxy
or a hospital CA), they are added to the image's trust store and PIP_CERT/REQUESTS_CA_BUNDLE/
SSL_CERT_FILE are set, so `pip install` inside later builds works behind that proxy. Such images
carry the label org.lancelot.local-ca=yes: keep them on this host, never push them.

Needs: root (debootstrap, chroot), debootstrap, a running Docker-API engine.
EOF
}

PREFIX=""
PYV=3.10
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
ONLY=""; LOCAL_CA=1; FORCE=0; KEEP=0
DOCKER=${DOCKER:-docker}
SUITE=bookworm
DEBIAN_IMAGE=docker.io/library/debian:bookworm

while [ $# -gt 0 ]; do
  case "$1" in
    --python-version) PYV=$2; shift 2 ;;
    --python-prefix) PREFIX=$2; shift 2 ;;
    --mirror) MIRROR=$2; shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    --no-local-ca) LOCAL_CA=0; shift ;;
    --force) FORCE=1; shift ;;
    --keep-work) KEEP=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$ONLY" in ""|debian|python) ;; *) echo "--only takes debian or python" >&2; exit 2 ;; esac
case "$PYV" in
  3.10) PREFIX=${PREFIX:-${PYTHON310_PREFIX:-}} ;;
  3.13) PREFIX=${PREFIX:-${PYTHON313_PREFIX:-}} ;;
  *) echo "--python-version takes 3.10 or 3.13" >&2; exit 2 ;;
esac
PYTHON_IMAGE=docker.io/library/python:$PYV-slim-bookworm

T0=$(date +%s)
log() { echo "[bootstrap +$(( $(date +%s) - T0 ))s] $*" >&2; }
die() { echo "bootstrap_offline_images: $*" >&2; exit 1; }
have_image() { [ "$FORCE" = 0 ] && "$DOCKER" image inspect "$1" >/dev/null 2>&1; }

"$DOCKER" info >/dev/null 2>&1 || die "no container engine answers (DOCKER_HOST=${DOCKER_HOST:-default})"

WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/lancelot-bootstrap.XXXXXX")
cleanup() {
  if [ "$KEEP" = 1 ]; then log "work folder kept: $WORK"; return; fi
  # a debootstrap interrupted halfway can leave /proc or /sys mounted inside the rootfs
  for m in proc sys dev/pts dev; do umount -l "$WORK/rootfs/$m" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

CA_FILES=()
if [ "$LOCAL_CA" = 1 ]; then
  shopt -s nullglob; CA_FILES=(/usr/local/share/ca-certificates/*.crt); shopt -u nullglob
fi
CA_LABEL=$([ ${#CA_FILES[@]} -gt 0 ] && echo yes || echo no)

# ------------------------------------------------------------------------------------------------
build_debian() {
  if have_image "$DEBIAN_IMAGE"; then log "$DEBIAN_IMAGE exists, skipped"; return; fi
  [ "$(id -u)" = 0 ] || die "debootstrap needs root"
  command -v debootstrap >/dev/null || die "debootstrap is missing: apt-get install debootstrap"
  local root=$WORK/rootfs
  log "debootstrap --variant=minbase $SUITE from $MIRROR (log: $WORK/debootstrap.log)"
  # the shared libraries CPython's extension modules link against (ssl, ctypes, sqlite3, lzma, ...)
  local include=ca-certificates,netbase,tzdata,libssl3,libffi8,libsqlite3-0,libbz2-1.0,liblzma5
  include+=,libreadline8,libncursesw6,libuuid1,libexpat1,zlib1g
  if ! debootstrap --variant=minbase --include="$include" "$SUITE" "$root" "$MIRROR" >"$WORK/debootstrap.log" 2>&1; then
    tail -20 "$WORK/debootstrap.log" >&2; die "debootstrap failed"
  fi
  cat >"$root/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb http://deb.debian.org/debian-security $SUITE-security main
EOF
  local env=(-c "ENV LANG=C.UTF-8")
  if [ ${#CA_FILES[@]} -gt 0 ]; then
    log "adding ${#CA_FILES[@]} local CA certificate(s) to the trust store (image stays local)"
    cp "${CA_FILES[@]}" "$root/usr/local/share/ca-certificates/"
    chroot "$root" update-ca-certificates >/dev/null 2>&1 || die "update-ca-certificates failed in the rootfs"
    local ca=/etc/ssl/certs/ca-certificates.crt
    env=(-c "ENV LANG=C.UTF-8 PIP_CERT=$ca REQUESTS_CA_BUNDLE=$ca SSL_CERT_FILE=$ca")
  fi
  # what the official slim images drop too (and keep out of later apt installs): package caches,
  # docs, man pages, translations
  cat >"$root/etc/dpkg/dpkg.cfg.d/slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
  find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
  find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} + 2>/dev/null || true
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/log/*.log \
         "$root"/usr/share/man/* "$root"/usr/share/info/*
  log "docker import -> $DEBIAN_IMAGE"
  tar -C "$root" --numeric-owner -c . | "$DOCKER" import "${env[@]}" -c 'CMD ["bash"]' \
      -c "LABEL org.lancelot.offline-bootstrap=debootstrap-$SUITE-minbase org.lancelot.local-ca=$CA_LABEL" \
      -m "lancelot offline bootstrap: debootstrap --variant=minbase $SUITE" - "$DEBIAN_IMAGE" >/dev/null
  "$DOCKER" tag "$DEBIAN_IMAGE" docker.io/library/debian:bookworm-slim
  rm -rf "$root"
}

# ------------------------------------------------------------------------------------------------
find_python_prefix() {
  if [ -n "$PREFIX" ]; then echo "$PREFIX"; return; fi
  if command -v pyenv >/dev/null; then
    local root; root=$(pyenv root)
    local newest; newest=$(ls -d "$root"/versions/"$PYV".* 2>/dev/null | sort -V | tail -1 || true)
    [ -n "$newest" ] && { echo "$newest"; return; }
  fi
  [ -x "/usr/local/bin/python$PYV" ] && { echo /usr/local; return; }
  return 1
}

build_python() {
  if have_image "$PYTHON_IMAGE"; then log "$PYTHON_IMAGE exists, skipped"; return; fi
  "$DOCKER" image inspect "$DEBIAN_IMAGE" >/dev/null 2>&1 || die "$DEBIAN_IMAGE is missing (run without --only)"
  local prefix; prefix=$(find_python_prefix) || die "no CPython $PYV found: pass --python-prefix"
  [ -x "$prefix/bin/python$PYV" ] || die "$prefix/bin/python$PYV does not exist"
  local version; version=$("$prefix/bin/python$PYV" -c 'import platform; print(platform.python_version())')
  log "CPython $version from $prefix"
  local ctx=$WORK/python-ctx; mkdir -p "$ctx/usr/local/bin" "$ctx/usr/local/lib"
  cp -a "$prefix/bin/python$PYV" "$ctx/usr/local/bin/"
  cp -a "$prefix"/lib/libpython3* "$ctx/usr/local/lib/" 2>/dev/null || true   # absent for static builds
  [ -d "$prefix/include/python$PYV" ] && mkdir -p "$ctx/usr/local/include" \
      && cp -a "$prefix/include/python$PYV" "$ctx/usr/local/include/"
  # the standard library, minus what the official slim image leaves out as well; site-packages is
  # rebuilt by ensurepip so nothing host-specific (.pth hooks, extra packages) leaks into the image
  (cd "$prefix/lib" && tar -c \
      --exclude=python$PYV/site-packages --exclude=python$PYV/test --exclude="python$PYV/*/test" \
      --exclude="python$PYV/*/tests" --exclude=idle_test --exclude=python$PYV/idlelib \
      --exclude=python$PYV/tkinter --exclude=python$PYV/turtledemo --exclude='_tkinter*' \
      --exclude='libpython*.a' --exclude=__pycache__ --exclude='*.pyc' python$PYV) \
    | tar -C "$ctx/usr/local/lib" -x
  mkdir -p "$ctx/usr/local/lib/python$PYV/site-packages"
  cat >"$ctx/Dockerfile" <<EOF
FROM $DEBIAN_IMAGE
COPY usr/ /usr/
RUN ldconfig \\
 && ln -s python$PYV /usr/local/bin/python3 && ln -s python3 /usr/local/bin/python \\
 && python3 -m ensurepip --default-pip >/dev/null \\
 && ln -sf pip3 /usr/local/bin/pip \\
 && find /usr/local -depth -name __pycache__ -exec rm -rf {} + \\
 && python -c "import ssl, sqlite3, ctypes, lzma, bz2, zlib, uuid, readline, decimal, hashlib; hashlib.sha256()" \\
 && pip --version
ENV PYTHON_VERSION=$version
LABEL org.lancelot.offline-bootstrap=local-cpython-$version
CMD ["python3"]
EOF
  log "docker build -> $PYTHON_IMAGE"
  DOCKER_BUILDKIT=0 "$DOCKER" build -q --network host -t "$PYTHON_IMAGE" "$ctx" 2>&1 >/dev/null \
    | grep -v -e DEPRECATED -e 'legacy builder' -e 'BuildKit is currently disabled' -e 'environment-variable' -e '^$' >&2 || true
  "$DOCKER" image inspect "$PYTHON_IMAGE" >/dev/null 2>&1 || die "building $PYTHON_IMAGE failed"
  "$DOCKER" tag "$PYTHON_IMAGE" "docker.io/library/python:$PYV-slim"
}

[ "$ONLY" = python ] || build_debian
[ "$ONLY" = debian ] || build_python
"$DOCKER" image ls --format '{{.Repository}}:{{.Tag}}  {{.Size}}' \
  | grep -E "^(docker\.io/library/)?(debian:bookworm|python:${PYV/./\\.}-slim-bookworm)  " >&2 || true
[ "$CA_LABEL" = yes ] && log "note: these images trust this host's extra CA certificates; do not push them"
log "done"
