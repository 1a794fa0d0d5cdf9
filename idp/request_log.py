"""One log line per request on stderr, with a request id, and nothing secret in any log line.

Registered like a blueprint (first in BLUEPRINTS, so its hooks run before the
others'). The line carries method, path without query string, status, duration,
tenant slug and client IP (and, for a request answered 503 in an outage, the cause).
Path parts that are credentials (a reset token, anything a route names `token`,
`code` or `secret`) are replaced by "…".

Every other log record of the process (gunicorn's error and access logs, Flask's,
SQLAlchemy's, tracebacks included) is redacted when it is made: query strings,
reset tokens, email addresses, password hashes, bearer credentials and SQL
parameters never reach a handler."""

from __future__ import annotations

import logging
import re
import sys
import time
import uuid

from flask import Blueprint, Response, g, request

from . import outages

bp = Blueprint("request_log", __name__)

REQUEST_ID_HEADER = "X-Request-Id"
LOGGER_NAME = "idp.requests"
# An incoming id is echoed and logged, so only a short plain token is trusted
# (no spaces or newlines that could forge log lines).
SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$")
SECRET_ROUTE_ARGS = ("token", "code", "secret")
REDACTED = "…"
# Unmatched URLs (404s) have no route to say which part is secret.
SECRET_PATH_PREFIXES = ("/reset/", "/join/")

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
    redact_every_log_record()


# What may be secret wherever it appears in a log line, and what it becomes; each with the text
# that every match contains, so a line without it skips that pattern (most lines: all of them).
_SECRETS = [
    # A query string (/authorize?...&code_challenge=..., /token?code=...), the path kept.
    ("?", re.compile(r"(/[^\s?\"']*)\?[^\s\"']+"), r"\1?[redacted]"),
    # Unmatched URLs (404s) have no route to say which part is secret.
    # (The request log's own lines say "…" already.)
    *((prefix, re.compile("(" + re.escape(prefix) + r")(?!" + REDACTED + r")[^\s\"?]+"), r"\1[redacted]")
      for prefix in SECRET_PATH_PREFIXES),
    # A password in a connection URL (postgresql://idp:secret@db/...).
    ("@", re.compile(r"(\w+://[^:/\s@]+:)[^@/\s]+@"), r"\1[redacted]@"),
    ("@", re.compile(r"[\w.%+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}"), "[email]"),
    ("$argon2", re.compile(r"\$argon2(?:id|i|d)\$[^\s'\")]+"), "[password hash]"),
    ("Bearer", re.compile(r"\b(Bearer)\s+[\w.~+/=-]+"), r"\1 [redacted]"),
    ("Basic", re.compile(r"\b(Basic)\s+[\w.~+/=-]+"), r"\1 [redacted]"),
    ("eyJ", re.compile(r"\beyJ[\w-]+\.[\w-]+\.[\w-]*"), "[jwt]"),
    # SQLAlchemy's statement parameters, from an engine made without hide_parameters.
    ("[parameters: ", re.compile(r"\[parameters: [^\n]*\]"), "[parameters hidden]"),
]


def redact(text: str) -> str:
    for needle, pattern, replacement in _SECRETS:
        if needle in text:
            text = pattern.sub(replacement, text)
    return text


def _redacted(record: logging.LogRecord) -> logging.LogRecord:
    # The message is formatted here, so a secret split between the format and its arguments is
    # seen whole (and gunicorn's access-log atoms are redacted with the rest).
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 - a malformed call; logging reports it at format time
        return record
    record.msg, record.args = redact(message), ()
    if record.exc_info and not record.exc_text:
        # Formatters print exc_text when it is set: the traceback is redacted once, here.
        record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
    if record.stack_info:
        record.stack_info = redact(record.stack_info)
    return record


def redact_every_log_record() -> None:
    """Redact each log record when it is made, whichever logger or handler it goes to: a filter
    sees only records of its own logger, and gunicorn's error log is not the access log."""
    make = logging.getLogRecordFactory()
    if getattr(make, "redacts", False):
        return

    def redacting_factory(*args, **kwargs):
        return _redacted(make(*args, **kwargs))

    redacting_factory.redacts = True
    logging.setLogRecordFactory(redacting_factory)


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
    if g.get(outages.OUTAGE_CAUSE):
        fields.append(f"cause={g.get(outages.OUTAGE_CAUSE)}")
    if g.get(outages.RETRIED):
        fields.append("retried=1")
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
