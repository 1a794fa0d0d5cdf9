"""Who commits: one rule.

The request boundary commits (when the view of a request whose answer is a success or a redirect,
i.e. below 400, is done) and rolls back otherwise; a CLI command commits when it succeeds (cli.domain_command);
a background job commits per unit of work. Services only flush.

Where a write must outlive the refusal that follows it (a failed login's audit event, a reused
code's revocation), or must be durable before something leaves the process (a link before its
mail), the service says so with the one explicit call, `commit_now(because=...)`."""

from __future__ import annotations

import functools

from flask import Flask, current_app, g, has_request_context
from sqlalchemy import event
from sqlalchemy.engine import Engine

from .extensions import db

_WROTE = "idp_wrote"


def commit_now(*, because: str) -> None:
    """Commit what the session holds at this point, ahead of the request boundary. `because`
    says why this write cannot wait for (or must survive) the end of the request."""
    db.session.commit()


@event.listens_for(Engine, "before_cursor_execute")
def _note_write(conn, cursor, statement, parameters, context, executemany):
    if has_request_context() and statement.lstrip()[:6].upper() in ("INSERT", "UPDATE", "DELETE"):
        g.setdefault(_WROTE, True)


def _has_writes() -> bool:
    if g.pop(_WROTE, None):
        return True
    if not db.session.registry.has():
        return False  # the request never opened a session (discovery, JWKS): nothing to make one for
    session = db.session()
    return bool(session.new or session.dirty or session.deleted)


def _committing_at_the_end(dispatch):
    """The request boundary: when the view is done, its writes are committed if its answer is a
    success or a redirect (below 400), and rolled back otherwise; a read needs no commit (the
    session ends at teardown). Done inside the view's dispatch, so a failed commit is answered like
    any failure of the view (outages: a 503 that is not run again, the commit's outcome unknown)."""

    @functools.wraps(dispatch)
    def dispatch_request():
        response = current_app.make_response(dispatch())
        if _has_writes():
            if response.status_code < 400:
                db.session.commit()
            else:
                # A refusal keeps nothing half-done; what had to survive it was committed explicitly.
                db.session.rollback()
        return response

    return dispatch_request


def init_app(app: Flask) -> None:
    """Before outages.init_app, so its one retry on a cut connection covers the flush that the
    commit begins with (the COMMIT itself is never run again)."""
    app.dispatch_request = _committing_at_the_end(app.dispatch_request)
