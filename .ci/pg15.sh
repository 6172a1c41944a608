#!/bin/sh
# The suite against an older server: Debian's PostgreSQL 15 (the default run uses
# the embedded PostgreSQL from pip). Installs postgresql-15 with apt-get when its
# binaries are missing, runs a throwaway cluster as a non-root user on a free
# TCP port of 127.0.0.1 with trust authentication, points DATABASE_URL at it,
# runs `make test`, and stops and deletes the cluster whatever happens.
set -eu
cd "$(dirname "$0")/.."

PGBIN=${PG15_BIN:-/usr/lib/postgresql/15/bin}
PGUSER_OS=${PG15_OS_USER:-pgtest}

if [ ! -x "$PGBIN/postgres" ]; then
    echo "pg15: installing postgresql-15"
    # No cluster of the package's own: this script makes its own.
    if [ ! -e /etc/postgresql-common/createcluster.conf ]; then
        mkdir -p /etc/postgresql-common
        echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.conf
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        -o Dpkg::Options::=--force-confold postgresql-15 >/dev/null
fi

# PostgreSQL refuses to run as root: as root, run it as an unprivileged user.
if [ "$(id -u)" = 0 ]; then
    id "$PGUSER_OS" >/dev/null 2>&1 || useradd --system --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin "$PGUSER_OS"
    as_pg() { runuser -u "$PGUSER_OS" -- "$@"; }
else
    as_pg() { "$@"; }
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/delivery-pg15-XXXXXX")
chmod 755 "$work"
if [ "$(id -u)" = 0 ]; then chown "$PGUSER_OS" "$work"; fi
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

cleanup() {
    as_pg "$PGBIN/pg_ctl" -D "$work/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

as_pg "$PGBIN/initdb" -D "$work/data" -U postgres --auth=trust --encoding=UTF8 \
    --no-instructions >"$work/initdb.log" 2>&1 || { cat "$work/initdb.log"; exit 1; }
# No statement text (it carries the arguments: token digests, password hashes)
# and no DETAIL/CONTEXT in the server log; as tools/devdb.py SERVER_LOG_SETTINGS.
quiet_log="-c log_min_error_statement=panic -c log_error_verbosity=terse"
if ! as_pg "$PGBIN/pg_ctl" -D "$work/data" -l "$work/server.log" -w -t 30 \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $work -c fsync=off $quiet_log" \
        start >/dev/null; then
    cat "$work/server.log"
    exit 1
fi

echo "pg15: $("$PGBIN/postgres" --version) on 127.0.0.1:$port"
DATABASE_URL="postgresql://postgres@127.0.0.1:$port/postgres" make test
