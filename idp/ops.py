"""Operations endpoints: health check for load balancers."""

from flask import Blueprint
from sqlalchemy import text

from .extensions import db

bp = Blueprint("ops", __name__)


@bp.route("/healthz")
def healthz():
    try:
        db.session.execute(text("SELECT 1"))
    except Exception:  # any database failure means "take me out of the pool"
        db.session.rollback()
        return {"status": "unavailable", "database": "unreachable"}, 503
    return {"status": "ok"}, 200
