#!/bin/sh
# Set up minirun on a Debian/Ubuntu machine, as root: system packages, a
# virtualenv at /opt/minirun/venv with minirun installed from this checkout,
# /usr/local/bin/minirun, and the demo image (images/out/).
# Idempotent: run it again after pulling changes.
set -eu
cd "$(dirname "$0")/.."
REPO=$(pwd)
VENV=${MINIRUN_VENV:-/opt/minirun/venv}

if [ "$(id -u)" != 0 ]; then
    echo "install.sh: run as root (minirun manages namespaces, mounts and cgroups)" >&2
    exit 1
fi

# Build tools and headers (cffi extension, static exec helper, python-prctl),
# busybox for the demo image, and the peers the tests drive.
PACKAGES="gcc libc6-dev make python3 python3-venv python3-dev libcap-dev libseccomp-dev
  libseccomp2 busybox-static iproute2 nftables libnftables1 curl openssl libcap2-bin procps
  catatonit
  umoci skopeo docker-registry containerd podman conmon netavark runc containernetworking-plugins
  qemu-system-x86 xz-utils ruby"
missing=""
for p in $PACKAGES; do
    dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "== apt-get install$missing"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi

# The first python3 >= 3.11 on PATH (pyenv's, or the system's).
PY=""
for cand in python3 python3.13 python3.12 python3.11; do
    if command -v "$cand" >/dev/null 2>&1 &&
       "$cand" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        PY=$(command -v "$cand"); break
    fi
done
[ -n "$PY" ] || { echo "install.sh: Python 3.11 or newer is required" >&2; exit 1; }

if [ ! -x "$VENV/bin/python" ]; then
    echo "== creating $VENV with $PY"
    "$PY" -m venv "$VENV"
fi
echo "== pip install -e $REPO"
"$VENV/bin/pip" install -q --disable-pip-version-check --upgrade pip >/dev/null 2>&1 || true
# compat mode: a plain .pth entry, no import hook (keeps start-up fast).
if ! "$VENV/bin/pip" install -q --disable-pip-version-check \
        --config-settings editable_mode=compat -e "$REPO[test]" > /tmp/minirun-pip.log 2>&1; then
    cat /tmp/minirun-pip.log >&2
    exit 1
fi
# pip's console script runs `site` first (a third of the interpreter's start-up,
# paid by every runtime call an engine makes): replace it with a launcher that
# starts Python with -S and the same sys.path (minirun/cli/launcher.py).
"$VENV/bin/python" -m minirun.cli.launcher "$VENV/bin/minirun"
ln -sf "$VENV/bin/minirun" /usr/local/bin/minirun
# Byte-compile now: every minirun call imports these (and PYTHONDONTWRITEBYTECODE
# would otherwise make each call compile them again).
"$VENV/bin/python" -m compileall -q minirun >/dev/null

echo "== building the demo image (images/out/)"
"$VENV/bin/python" images/build_busybox.py
echo "== minirun is installed: $(minirun --version | head -1)"
