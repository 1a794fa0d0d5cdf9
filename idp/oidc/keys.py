"""ID token signing keys: RS256 keys kept in the database, published as JWKS.

The newest active key signs. `rotate_signing_key` retires the others; a retired
key stays published until every ID token it signed has expired
(max(id_token_ttl, access_token_ttl) after retirement).

Discovery, JWKS and signing read keys from a per-process cache that reloads
from the database at most every `RELOAD_SECONDS` (or when an unknown `kid` is
presented, at most every `MISS_RELOAD_SECONDS`), so several gunicorn workers
pick up a rotation made by another process without a query per request."""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from datetime import timedelta

from flask import current_app
from joserfc.jwk import KeySet, RSAKey
from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError

from .. import clock
from ..errors import Conflict
from ..extensions import db
from ..models import SigningKey
from ..transactions import commit_now

ALG = "RS256"
KEY_SIZE = 2048
RELOAD_SECONDS = 10
MISS_RELOAD_SECONDS = 5
_CACHE_KEY = "idp_signing_keys"


@dataclass
class _Snapshot:
    """What one process knows about the published keys at `loaded_at`."""

    loaded_at: int
    signer_kid: str | None = None
    private_keys: dict[str, RSAKey] = field(default_factory=dict)
    public_jwks: dict = field(default_factory=lambda: {"keys": []})
    jwks_body: bytes = b'{"keys": []}'
    etag: str = ""
    #: The public keys ready for verifying ID token hints, built once per snapshot.
    public_keyset: KeySet | None = None
    last_miss_reload: int = 0


def _new_rsa_key() -> tuple[str, dict]:
    key = RSAKey.generate_key(KEY_SIZE, parameters={"alg": ALG, "use": "sig"}, private=True)
    # RFC 7638 thumbprint: stable, unique, and says nothing about when the key was made.
    kid = key.thumbprint()
    private = key.as_dict(private=True)
    private["kid"] = kid
    return kid, private


def _published_rows() -> list[SigningKey]:
    now = clock.now()
    return list(
        db.session.scalars(
            select(SigningKey)
            .where(or_(SigningKey.unpublish_at.is_(None), SigningKey.unpublish_at > now))
            .order_by(SigningKey.created_at, SigningKey.id)
        )
    )


def _snapshot_from(rows: list[SigningKey], previous: _Snapshot | None = None) -> _Snapshot:
    snapshot = _Snapshot(loaded_at=clock.timestamp())
    known = previous.private_keys if previous is not None else {}
    public = []
    for row in rows:
        # A kid names one key for ever: reuse the imported key instead of parsing RSA again.
        key = known.get(row.kid) or RSAKey.import_key(row.private_jwk)
        snapshot.private_keys[row.kid] = key
        jwk = key.as_dict(private=False)
        jwk.update({"kid": row.kid, "alg": row.alg, "use": "sig"})
        public.append(jwk)
        if row.retired_at is None:
            snapshot.signer_kid = row.kid  # rows are oldest first: the newest active key wins
    snapshot.public_jwks = {"keys": public}
    snapshot.jwks_body = json.dumps(snapshot.public_jwks, sort_keys=True).encode()
    snapshot.etag = hashlib.sha256(snapshot.jwks_body).hexdigest()[:32]
    if public:
        snapshot.public_keyset = KeySet.import_key_set(snapshot.public_jwks)
    return snapshot


def _lock() -> threading.Lock:
    return current_app.extensions.setdefault(_CACHE_KEY + "_lock", threading.Lock())


def _reload(previous: _Snapshot | None = None) -> _Snapshot:
    snapshot = _snapshot_from(_published_rows(), previous)
    current_app.extensions[_CACHE_KEY] = snapshot
    return snapshot


def _snapshot(force: bool = False) -> _Snapshot:
    snapshot: _Snapshot | None = current_app.extensions.get(_CACHE_KEY)
    now = clock.timestamp()
    # A clock moved backwards (tests) also counts as stale.
    if not force and snapshot is not None and 0 <= now - snapshot.loaded_at < RELOAD_SECONDS:
        return snapshot
    with _lock():
        # Threads that queued behind one reload take its result rather than reloading again.
        current = current_app.extensions.get(_CACHE_KEY)
        if current is not None and current is not snapshot:
            return current
        return _reload(current)


def forget_cached_keys() -> None:
    """Drop this process's cache (after a rotation in this process)."""
    current_app.extensions.pop(_CACHE_KEY, None)


def current_signing_key() -> tuple[str, RSAKey]:
    """(kid, private key) of the key that signs now; the first key is made on first use."""
    snapshot = _snapshot()
    if snapshot.signer_kid is None:
        snapshot = _snapshot(force=True)
    if snapshot.signer_kid is None:
        _create_first_key()
        snapshot = _snapshot(force=True)
    return snapshot.signer_kid, snapshot.private_keys[snapshot.signer_kid]


def _create_first_key() -> None:
    """Workers asked at the same moment must agree on one key: every key row gets an explicit
    id, the first one id 1, so of two concurrent creators the primary key lets exactly one win.

    Callers run this before their request writes anything (see views.token), so the
    rollback of a lost race discards nothing else."""
    kid, private = _new_rsa_key()
    db.session.add(SigningKey(id=1, kid=kid, alg=ALG, private_jwk=private, created_at=clock.now()))
    try:
        commit_now(because="every worker must sign with the one first key, whatever this request does next")
    except IntegrityError:
        db.session.rollback()


def rotate_signing_key() -> SigningKey:
    """Add a new signing key; every older active key is retired but stays published
    until the tokens it signed have expired."""
    settings = current_app.config["SETTINGS"]
    now = clock.now()
    keep_for = timedelta(seconds=max(settings.id_token_ttl, settings.access_token_ttl))
    for old in db.session.scalars(select(SigningKey).where(SigningKey.retired_at.is_(None))):
        old.retired_at = now
        old.unpublish_at = now + keep_for
    kid, private = _new_rsa_key()
    # Explicit ids (see _create_first_key); a concurrent rotation fails instead of adding two keys.
    next_id = (db.session.scalar(select(func.max(SigningKey.id))) or 0) + 1
    key = SigningKey(id=next_id, kid=kid, alg=ALG, private_jwk=private, created_at=now)
    db.session.add(key)
    try:
        commit_now(because="a concurrent rotation must fail here, not at the boundary")
    except IntegrityError:
        db.session.rollback()
        raise Conflict("Another key rotation finished at the same moment; run the command again") from None
    forget_cached_keys()
    return key


def public_jwks() -> tuple[bytes, str]:
    """(JSON body, ETag) of the published keys, from memory. Makes the first key if none exists,
    so a relying party that fetches JWKS before any login still finds the signing key."""
    snapshot = _snapshot()
    if snapshot.signer_kid is None:
        current_signing_key()
        snapshot = _snapshot()
    return snapshot.jwks_body, snapshot.etag


def verification_keys(kid: str | None = None) -> KeySet:
    """The published public keys; reloads once (rate-limited) when `kid` is unknown,
    so a key rotated in another process is found."""
    snapshot = _snapshot()
    now = clock.timestamp()
    if kid and kid not in snapshot.private_keys and now - snapshot.last_miss_reload >= MISS_RELOAD_SECONDS:
        snapshot = _snapshot(force=True)
        snapshot.last_miss_reload = now
    return snapshot.public_keyset or KeySet.import_key_set(snapshot.public_jwks)
