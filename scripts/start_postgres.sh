#!/usr/bin/env bash
# Start a throwaway PostgreSQL server on loopback for the harness store (CI and local tests), print its URL.
#
#   scripts/start_postgres.sh [DATA_DIR]          start (installing PostgreSQL from Debian if missing)
#   scripts/start_postgres.sh --stop [DATA_DIR]   stop the server started in DATA_DIR
#
# Environment: HARNESS_PG_PORT (default: a free port), HARNESS_PG_USER / HARNESS_PG_PASSWORD /
# HARNESS_PG_DB (default harness/harness/harness). DATA_DIR defaults to /tmp/harness-pg.
# The last line of output is the SQLAlchemy URL, e.g.
#   postgresql+psycopg://harness:harness@127.0.0.1:54329/harness
# The cluster listens on 127.0.0.1 only; its role may create databases (tests make one per test).
set -euo pipefail

stop=0
if [[ "${1:-}" == "--stop" ]]; then
    stop=1
    shift
fi
data_dir="${1:-/tmp/harness-pg}"
user="${HARNESS_PG_USER:-harness}"
password="${HARNESS_PG_PASSWORD:-harness}"
database="${HARNESS_PG_DB:-harness}"

pg_bin() {
    local dir
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    [[ -n "$dir" && -x "$dir/initdb" ]] && echo "$dir"
}

# initdb and postgres refuse to run as root: run them as the `postgres` account then.
as_owner() {
    if [[ $(id -u) -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

bin=$(pg_bin || true)
if [[ $stop -eq 1 ]]; then
    [[ -n "$bin" && -f "$data_dir/PG_VERSION" ]] || { echo "no PostgreSQL data folder at $data_dir" >&2; exit 1; }
    as_owner "$bin/pg_ctl" -D "$data_dir" -m fast -w stop
    exit 0
fi

if [[ -z "$bin" ]]; then
    echo "PostgreSQL is not installed: installing it from Debian" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq postgresql >&2
    bin=$(pg_bin)
fi
if [[ $(id -u) -eq 0 ]] && ! id postgres >/dev/null 2>&1; then
    useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
fi

port_file="$data_dir/harness-port"
if [[ -f "$data_dir/postmaster.pid" ]] && as_owner "$bin/pg_ctl" -D "$data_dir" status >/dev/null 2>&1; then
    port=$(cat "$port_file")
else
    port="${HARNESS_PG_PORT:-}"
    if [[ -z "$port" ]] && command -v python3 >/dev/null; then
        port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    fi
    port="${port:-54329}"
    if [[ ! -f "$data_dir/PG_VERSION" ]]; then
        mkdir -p "$data_dir"
        [[ $(id -u) -eq 0 ]] && chown postgres:postgres "$data_dir"
        chmod 700 "$data_dir"
        as_owner "$bin/initdb" -D "$data_dir" -U postgres -E UTF8 --locale=C.UTF-8 \
            --auth-local=trust --auth-host=scram-sha-256 >/dev/null
    fi
    echo "$port" | as_owner tee "$port_file" >/dev/null
    # The Unix socket lives in the data folder, so no system folder (/var/run/postgresql) is needed.
    as_owner "$bin/pg_ctl" -D "$data_dir" -l "$data_dir/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $data_dir -c max_connections=200" start >/dev/null
fi

psql_admin() {
    as_owner "$bin/psql" -h "$data_dir" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 -qAt "$@"
}
if [[ -z $(psql_admin -c "SELECT 1 FROM pg_roles WHERE rolname = '$user'") ]]; then
    psql_admin -c "CREATE ROLE \"$user\" LOGIN CREATEDB PASSWORD '$password'"
fi
if [[ -z $(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = '$database'") ]]; then
    psql_admin -c "CREATE DATABASE \"$database\" OWNER \"$user\""
fi
echo "postgresql+psycopg://$user:$password@127.0.0.1:$port/$database"
