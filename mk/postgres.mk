# The journal on PostgreSQL (dvp.journal_pg): its tests start a real server from the machine's
# Debian `postgresql` package (initdb, postgres).  Included from the top Makefile.
# `make setup` installs the package when the binaries are missing (idempotent: a no-op when
# /usr/lib/postgresql/*/bin/initdb exists or DVP_PG_BIN is set).

EXTRA_SETUP += postgres-server

.PHONY: postgres-server
## Install Debian's postgresql package unless its server binaries are present
postgres-server:
	@if [ -n "$$DVP_PG_BIN" ] || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null; then \
	    echo "postgres-server: installing Debian's postgresql package"; \
	    SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	    $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq postgresql >/dev/null; \
	else echo "postgres-server: no PostgreSQL and no apt-get: install PostgreSQL or set DVP_PG_BIN" >&2; exit 1; fi
