"""Placeholder: the forgot-password flow (issue 3) replaces this."""

from flask import Blueprint, abort

bp = Blueprint("reset", __name__)


@bp.route("/t/<slug>/forgot-password", methods=["GET", "POST"])
def forgot_password(slug):
    abort(404)
