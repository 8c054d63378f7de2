# Sourced by .ci/run: a throwaway PostgreSQL server on loopback for the multi-machine tests.
# pg_start installs it from Debian's packages, starts it with its own data folder and port, creates
# a database and exports ABLATE_TEST_POSTGRES_URL; pg_stop stops it and deletes everything.

pg_start() {
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    # Debian's packages; if the package index cannot be reached, a server already installed will do.
    if ! { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >/dev/null; }; then
        ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { echo "cannot install postgresql" >&2; return 1; }
        echo "warning: apt-get failed; using the PostgreSQL already installed" >&2
    fi
    local bin
    bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
    PG_BIN=$bin
    PG_DIR=$(mktemp -d /tmp/ablate-ci-pg.XXXXXX)
    PG_PORT=${PG_PORT:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
    local password
    password=$(python3 -c 'import secrets; print(secrets.token_hex(12))')
    printf '%s\n' "$password" >"$PG_DIR/pwfile"
    mkdir -p "$PG_DIR/data" "$PG_DIR/socket"
    chown -R postgres:postgres "$PG_DIR"  # the server refuses to run as root
    as_postgres "$bin/initdb" -D "$PG_DIR/data" -U ablate --pwfile="$PG_DIR/pwfile" --auth=scram-sha-256 >/dev/null
    rm -f "$PG_DIR/pwfile"
    as_postgres "$bin/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PG_DIR/socket -c max_connections=200" start >/dev/null
    PGPASSWORD=$password "$bin/createdb" -h 127.0.0.1 -p "$PG_PORT" -U ablate ablate_test
    export ABLATE_TEST_POSTGRES_URL="postgresql://ablate:$password@127.0.0.1:$PG_PORT/ablate_test"
    echo "+ PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$PG_PORT (data in $PG_DIR)"
}

pg_stop() {
    if [ -n "${PG_DIR:-}" ] && [ -d "$PG_DIR/data" ]; then
        as_postgres "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null 2>&1 ||
            as_postgres "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    [ -n "${PG_DIR:-}" ] && rm -rf "$PG_DIR"
    PG_DIR=
}

as_postgres() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}
