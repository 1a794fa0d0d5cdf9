"""One log line per request on stderr, with a request id, and nothing secret in it.

Registered like a blueprint (first in BLUEPRINTS, so its hooks run before the
others'). The line carries method, path without query string, status, duration,
tenant slug and client IP. Path parts that are credentials (a reset token,
anything a route names `token`, `code` or `secret`) are replaced by "…"."""

from __future__ import annotations

import logging
import re
import sys
import time
import uuid

from flask import Blueprint, Response, g, request

bp = Blueprint("request_log", __name__)

REQUEST_ID_HEADER = "X-Request-Id"
LOGGER_NAME = "idp.requests"
# An incoming id is echoed and logged, so only a short plain token is trusted
# (no spaces or newlines that could forge log lines).
SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$")
SECRET_ROUTE_ARGS = ("token", "code", "secret")
REDACTED = "…"
# Unmatched URLs (404s) have no route to say which part is secret.
SECRET_PATH_PREFIXES = ("/reset/",)

logger = logging.getLogger(LOGGER_NAME)


@bp.record_once
def _configure_logger(state) -> None:
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    # Flask's "idp" app logger would print each line a second time.
    logger.propagate = False
    # Alembic's fileConfig (migrations/env.py) disables loggers that existed before it ran.
    logger.disabled = False
    for name in ("werkzeug", "gunicorn.access"):
        if _ACCESS_LOG_REDACTOR not in logging.getLogger(name).filters:
            logging.getLogger(name).addFilter(_ACCESS_LOG_REDACTOR)


class _RedactSecretPaths(logging.Filter):
    """Other servers' access logs (werkzeug, gunicorn) print whole paths: keep reset tokens out."""

    PATTERN = re.compile("(" + "|".join(re.escape(p) for p in SECRET_PATH_PREFIXES) + r")[^\s\"?]+")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = self._clean(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(self._clean(a) for a in record.args)
        elif isinstance(record.args, dict):
            # In place: gunicorn's atoms dict answers "-" for keys it lacks, a copy would not.
            for key in list(record.args.keys()):
                record.args[key] = self._clean(dict.__getitem__(record.args, key))
        return True

    def _clean(self, value):
        return self.PATTERN.sub(r"\1[redacted]", value) if isinstance(value, str) else value


_ACCESS_LOG_REDACTOR = _RedactSecretPaths()


def request_id() -> str:
    """This request's id (also in the X-Request-Id response header)."""
    rid = g.get("request_id")
    if rid is None:
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        rid = incoming if SANE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        g.request_id = rid
    return rid


@bp.before_app_request
def _start() -> None:
    # g can outlive a request (an app context held open around several), so start afresh.
    g.pop("request_id", None)
    request_id()
    # A duration, not a time of day: idp.clock may be frozen in tests, perf_counter never is.
    g.request_started = time.perf_counter()


@bp.after_app_request
def _log(response: Response) -> Response:
    rid = request_id()
    response.headers[REQUEST_ID_HEADER] = rid
    g.pop("request_id", None)
    started = g.pop("request_started", None)
    duration_ms = (time.perf_counter() - started) * 1000 if started is not None else 0.0
    view_args = request.view_args or {}
    fields = [
        f"request_id={rid}",
        f"method={request.method}",
        f"path={loggable_path()}",
        f"status={response.status_code}",
        f"duration_ms={duration_ms:.1f}",
    ]
    # Protocol endpoints name no tenant in their URL; a view that resolved one may say so in g.tenant_slug.
    tenant = view_args.get("slug") or g.pop("tenant_slug", None)
    if tenant:
        fields.append(f"tenant={_plain(tenant)}")
    fields.append(f"ip={request.remote_addr or '-'}")
    logger.info(" ".join(fields))
    return response


def loggable_path() -> str:
    """request.path (never the query string) with credential segments replaced by "…"."""
    path = request.path
    view_args = request.view_args or {}
    for name in SECRET_ROUTE_ARGS:
        value = view_args.get(name)
        if isinstance(value, str) and value:
            path = path.replace(value, REDACTED)
    for prefix in SECRET_PATH_PREFIXES:
        if path.startswith(prefix) and path != prefix:
            path = prefix + REDACTED
    return _plain(path)


def _plain(value: str) -> str:
    # Keep one request on one line whatever the URL holds.
    return "".join(ch if ch.isprintable() and not ch.isspace() else "?" for ch in value)
