"""gunicorn settings for `gunicorn wsgi:app` (read from the working directory).

X-Forwarded-* headers are the IdP's business alone: ProxyFix applies them
when IDP_TRUSTED_PROXIES says how many proxies to trust, so gunicorn must not
also believe X-Forwarded-Proto from local addresses (its default)."""

import os
import sys

from idp.config import Settings, UnsafeForProduction


def _refusing(read):
    """read(), where a refused setting stops gunicorn with its message, not a traceback."""
    try:
        return read()
    except (ValueError, UnsafeForProduction) as refused:
        print(f"Error: {refused}", file=sys.stderr)
        sys.exit(1)


forwarded_allow_ips = ""

# On PostgreSQL, gevent: a worker serves many requests while each waits on the database or
# Redis, for less CPU per request than threads (bench/README.md); psycopg 3 cooperates with it,
# and argon2 runs on real threads (idp.accounts.passwords). SQLite stays on threads: its lock wait
# blocks in C and would stall the very worker whose other request holds the lock.
# `--worker-class` on the command line overrides this.
worker_class = "gevent" if os.environ.get("IDP_DATABASE_URL", "").startswith("postgresql") else "gthread"
threads = 4  # gthread: no more than the database pool's 5 connections per worker
if worker_class == "gevent":
    # Client connections per worker (idle keep-alive ones included, closed after `keepalive`, 2 s),
    # so requests in flight: no more than the database connections the worker keeps
    # (IDP_DATABASE_POOL_SIZE), so no request waits for one. Further clients wait in the listen
    # queue, where waiting costs nothing.
    worker_connections = _refusing(Settings.from_env).database_pool_size
# gunicorn >= 23 opens a control socket in $HOME by default: several instances on one host
# would fight over it, and operators manage workers with signals anyway.
control_socket_disable = True


def on_starting(server):
    """Refuse unsafe production settings once, in the master, before any worker boots."""
    _refusing(lambda: Settings.from_env().check_production())
