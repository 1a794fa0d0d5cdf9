"""Security-key tests: register a software key through the service, as the pages would."""

from __future__ import annotations

import pytest

from idp.accounts import security_keys
from idp.extensions import db

from .authenticator import SoftKey

ORIGIN = "http://127.0.0.1:5000"
BINDING = "b" * 43


def register(account, *, passkey: bool = False, name: str = "Blue USB key", key: SoftKey | None = None,
             binding: str = BINDING):
    key = key or SoftKey()
    options = security_keys.registration_options(account, binding=binding, passkey=passkey)
    stored, codes = security_keys.register(account, name, key.create(options, ORIGIN), binding=binding, tenant=None,
                                           ip=None)
    db.session.commit()  # as the request boundary would
    return key, stored, codes


@pytest.fixture
def soft_key():
    return SoftKey
