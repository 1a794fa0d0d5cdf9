"""Who commits: one rule.

The request boundary commits (after every request whose answer is a success or a redirect, i.e.
below 400) and rolls back otherwise; a CLI command commits when it succeeds (cli.domain_command);
a background job commits per unit of work. Services only flush.

Where a write must outlive the refusal that follows it (a failed login's audit event, a reused
code's revocation), or must be durable before something leaves the process (a link before its
mail), the service says so with the one explicit call, `commit_now(because=...)`."""

from __future__ import annotations

from flask import Flask, Response

from .extensions import db


def commit_now(*, because: str) -> None:
    """Commit what the session holds at this point, ahead of the request boundary. `because`
    says why this write cannot wait for (or must survive) the end of the request."""
    db.session.commit()


def _at_request_boundary(response: Response) -> Response:
    if response.status_code < 400:
        db.session.commit()
    else:
        # A refusal keeps nothing half-done; what had to survive it was committed explicitly.
        db.session.rollback()
    return response


def init_app(app: Flask) -> None:
    """Registered after every blueprint, so it runs before their after-request hooks (Flask runs
    them in reverse): the request log then reports the status the commit produced."""
    app.after_request(_at_request_boundary)
