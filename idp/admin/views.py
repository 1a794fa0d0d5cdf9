"""Placeholder: Admin > Users (issue 5) replaces this."""

from flask import Blueprint, abort

bp = Blueprint("admin", __name__)


@bp.route("/t/<slug>/admin/users")
def users(slug):
    abort(404)
