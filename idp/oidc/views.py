"""Placeholder: the OIDC endpoints replace this."""

from flask import Blueprint

bp = Blueprint("oidc", __name__)
