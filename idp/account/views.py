"""Placeholder: Account settings > Security keys (issue 4) replaces this."""

from flask import Blueprint, abort

bp = Blueprint("account", __name__)


@bp.route("/account/security")
def security():
    abort(404)
