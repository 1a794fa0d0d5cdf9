"""gunicorn settings for `gunicorn wsgi:app` (read from the working directory).

X-Forwarded-* headers are the IdP's business alone: ProxyFix applies them
when IDP_TRUSTED_PROXIES says how many proxies to trust, so gunicorn must not
also believe X-Forwarded-Proto from local addresses (its default)."""

import sys

forwarded_allow_ips = ""
# gunicorn >= 23 opens a control socket in $HOME by default: several instances on one host
# would fight over it, and operators manage workers with signals anyway.
control_socket_disable = True


def on_starting(server):
    """Refuse unsafe production settings once, in the master, before any worker boots."""
    from idp.config import Settings, UnsafeForProduction

    try:
        Settings.from_env().check_production()
    except UnsafeForProduction as refused:
        print(f"Error: {refused}", file=sys.stderr)
        sys.exit(1)
