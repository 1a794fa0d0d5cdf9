"""Counts the SQL statements each request runs (IDP_COUNT_QUERIES=1): benchmarks and tests.

The count is returned in an `X-SQL-Queries` response header so a load
generator can check, from outside, how many round trips each endpoint costs."""

from __future__ import annotations

from flask import Flask, g, has_request_context
from sqlalchemy import event
from sqlalchemy.engine import Engine

HEADER = "X-SQL-Queries"
_listening = False


def _count_statement(conn, cursor, statement, parameters, context, executemany):
    if has_request_context():
        g._sql_queries = g.get("_sql_queries", 0) + 1


def register_query_count(app: Flask) -> None:
    """Install the counter when the app's settings ask for it; a no-op otherwise."""
    global _listening
    if not app.config["SETTINGS"].count_queries:
        return
    if not _listening:
        # On the Engine class, so it covers whichever engine Flask-SQLAlchemy creates (lazily).
        event.listen(Engine, "before_cursor_execute", _count_statement)
        _listening = True

    @app.after_request
    def _add_query_count(response):
        response.headers[HEADER] = str(g.get("_sql_queries", 0))
        return response
