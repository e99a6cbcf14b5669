#!/usr/bin/env bash
# Prints the state directory `make run` uses: ./.bookvault, unless this runs as root in a
# directory the `postgres` user cannot enter (a clone under /root, say): PostgreSQL runs as
# that user then, so the state goes to /var/lib/bookvault/<name of this directory> instead.
set -euo pipefail

here="$(pwd -P)"
if [ "$(id -u)" -eq 0 ] && id postgres >/dev/null 2>&1 && ! runuser -u postgres -- test -x "$here"; then
    echo "/var/lib/bookvault/$(basename "$here")"
else
    echo "$here/.bookvault"
fi
