"""Development only: /dev/outbox lists the mails the outbox backend wrote, with
their links clickable, so `make run` users can follow reset and first-time links."""

from __future__ import annotations

import re
from email import policy
from email.parser import BytesParser

from flask import Blueprint, abort, current_app, render_template

bp = Blueprint("dev_outbox", __name__)

_NAME_RE = re.compile(r"^[A-Za-z0-9T-]+\.eml$")
_LINK_RE = re.compile(r"https?://[^\s<>\"')]+")
#: The newest messages only: a long-running development instance can collect many.
LIST_LIMIT = 200


def _written_order(path):
    # Names start with idp.clock's time, which tests and demos may freeze: the write order decides.
    return (path.stat().st_mtime_ns, path.name)


def _development_only():
    if current_app.config["SETTINGS"].is_production:
        abort(404)


def _read(path):
    with path.open("rb") as handle:
        message = BytesParser(policy=policy.default).parse(handle)
    text_part = message.get_body(preferencelist=("plain",))
    text = text_part.get_content() if text_part is not None else ""
    return {
        "name": path.name,
        "to": message.get("To", ""),
        "from": message.get("From", ""),
        "subject": message.get("Subject", ""),
        "date": message.get("Date", ""),
        "text": text,
        "links": list(dict.fromkeys(_LINK_RE.findall(text))),
    }


@bp.route("/dev/outbox")
def outbox():
    _development_only()
    folder = current_app.config["SETTINGS"].outbox_path
    paths = sorted(folder.glob("*.eml"), key=_written_order, reverse=True)[:LIST_LIMIT] if folder.is_dir() else []
    return render_template("mail/outbox.html", messages=[_read(p) for p in paths], folder=folder)


@bp.route("/dev/outbox/<name>")
def outbox_message(name: str):
    _development_only()
    path = current_app.config["SETTINGS"].outbox_path / name
    if not _NAME_RE.match(name) or not path.is_file():
        abort(404, description="There is no such message in the outbox.")
    return render_template("mail/outbox_message.html", message=_read(path))
