#!/usr/bin/env bash
# Installs what BookVault needs on a Debian machine, skipping what is already there:
#   system packages (root only): PostgreSQL server binaries, redis-server, wrk, nginx-light, python3-venv
#   a virtualenv in .venv with BookVault and its dev extras (reinstalled only when pyproject.toml changed)
# Not root and something is missing: says what to install and fails.
set -euo pipefail

cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
STAMP="$VENV/.bootstrap-stamp"

have() { command -v "$1" >/dev/null 2>&1; }
have_initdb() { have initdb || compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; }
python_ok() { have "$PYTHON" && "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; }
venv_ok() { "$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1; }

missing=()
have_initdb || missing+=(postgresql)
have redis-server || missing+=(redis-server)
have wrk || missing+=(wrk)
have nginx || missing+=(nginx-light)
if ! python_ok; then
    missing+=(python3 python3-venv)
elif [ ! -x "$VENV/bin/python" ] && ! venv_ok; then
    missing+=(python3-venv)
fi

if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "bootstrap: missing system packages; install them with: sudo apt-get install ${missing[*]}" >&2
        exit 1
    fi
    if [[ " ${missing[*]} " == *" postgresql "* ]] && [ ! -e /etc/postgresql-common/createcluster.conf ]; then
        # BookVault makes its own clusters; stop the package from creating and starting one on :5432.
        mkdir -p /etc/postgresql-common
        echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.conf
    fi
    echo "bootstrap: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ! python_ok; then
    echo "bootstrap: BookVault needs Python 3.11 or newer as '$PYTHON' (set PYTHON=... to choose another)" >&2
    exit 1
fi

if [ ! -x "$VENV/bin/python" ]; then
    echo "bootstrap: creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi

if [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ] || [ ! -x "$VENV/bin/bookvault" ]; then
    echo "bootstrap: installing BookVault and its dev tools into $VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet -e '.[dev]'
    touch "$STAMP"
fi
