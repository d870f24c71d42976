#!/usr/bin/env bash
# Start a local PostgreSQL (Debian's package) for the two-worker Optuna storage test and print
# the URL the tests read from JMEDBENCH_TEST_POSTGRES.
set -euo pipefail
if ! command -v pg_ctlcluster >/dev/null; then
  apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
fi
version=$(ls /usr/lib/postgresql | sort -n | tail -1)
pg_lsclusters -h | grep -q "^$version main" || pg_createcluster "$version" main >&2
pg_ctlcluster "$version" main start >&2 || true
for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 && break; sleep 1; done
su postgres -c "psql -q -tc \"SELECT 1 FROM pg_roles WHERE rolname='jmedbench'\" | grep -q 1 || psql -q -c \"CREATE USER jmedbench PASSWORD 'jmedbench'\"" >&2
su postgres -c "psql -q -tc \"SELECT 1 FROM pg_database WHERE datname='jmedbench'\" | grep -q 1 || createdb -O jmedbench jmedbench" >&2
echo "postgresql://jmedbench:jmedbench@127.0.0.1:5432/jmedbench"
