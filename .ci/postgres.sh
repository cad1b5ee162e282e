#!/usr/bin/env bash
# Starts a throwaway PostgreSQL server on 127.0.0.1 for the storage tests and prints the
# connection string on stdout. Installs the server from the machine's packages when missing.
# Usage: url=$(bash .ci/postgres.sh)
# DIPDRG_TEST_PG_DATA=DIR keeps the cluster in DIR/db (the fault tests restart it with pg_ctl).
set -euo pipefail
port="${DIPDRG_TEST_PG_PORT:-54329}"
# Move on to the next port while one is taken.
while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
  echo "installing postgresql from the machine's packages" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 && apt-get install -y -qq postgresql >&2
  bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
fi
if [ -n "${DIPDRG_TEST_PG_DATA:-}" ]; then data="$DIPDRG_TEST_PG_DATA"; mkdir -p "$data"; else data=$(mktemp -d /tmp/dipdrg-pg.XXXXXX); fi
as_postgres() {
  if [ "$(id -u)" = 0 ]; then chown -R postgres "$data"; runuser -u postgres -- "$@"; else "$@"; fi
}
as_postgres "$bin/initdb" -D "$data/db" -A trust -U postgres >/dev/null
as_postgres "$bin/pg_ctl" -D "$data/db" -l "$data/log" -w \
  -o "-p $port -k $data -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
echo "host=127.0.0.1 port=$port user=postgres dbname=postgres"
