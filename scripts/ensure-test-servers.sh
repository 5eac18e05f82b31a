#!/usr/bin/env bash
# Makes sure what the test servers need is on this machine, so `npm test` works on a fresh one:
# PostgreSQL 15 and openssl from Debian (only when missing; PostgreSQL 18 comes from npm), and the
# `postgres` OS user (PostgreSQL refuses to run as root, so as root the test servers run as postgres).
# Installing needs root (or sudo); otherwise it says what to install and stops.
set -euo pipefail

say() { printf '==> %s\n' "$*"; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo "$@"
  else return 1
  fi
}

missing=()
[ -x /usr/lib/postgresql/15/bin/postgres ] || missing+=(postgresql-15)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing ${missing[*]} with apt-get (needed by the test servers)"
  # No cluster of its own: the tests start private servers, and nothing may hold port 5432.
  if ! { as_root mkdir -p /etc/postgresql-common &&
    echo "create_main_cluster = false" | as_root tee /etc/postgresql-common/createcluster.conf >/dev/null &&
    as_root apt-get update -qq &&
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      -o Dpkg::Options::=--force-confold "${missing[@]}" >/dev/null; }; then
    echo "error: the tests need ${missing[*]}; install with: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi

if [ "$(id -u)" -eq 0 ] && ! id -u postgres >/dev/null 2>&1; then
  say "creating the OS user postgres (PostgreSQL refuses to run as root)"
  useradd --system --user-group --home-dir /var/lib/postgresql --shell /bin/bash postgres
fi
