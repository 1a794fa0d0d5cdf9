"""A software authenticator for tests: an EC P-256 key that answers WebAuthn options the way a
browser and security key would (attestation "none"), so the service is tested without a browser."""

from __future__ import annotations

import hashlib
import json
import os
import struct

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

UP, UV, BE, BS, AT = 0x01, 0x04, 0x08, 0x10, 0x40


def b64url(data: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class SoftKey:
    def __init__(self, *, counter: int | None = 0, synced: bool = False):
        self.private_key = ec.generate_private_key(ec.SECP256R1())
        self.credential_id = os.urandom(32)
        self.counter = counter  # None: an authenticator that does not count (always 0)
        self.synced = synced
        self.user_handle: bytes | None = None

    @property
    def id(self) -> str:
        return b64url(self.credential_id)

    def _cose_key(self) -> bytes:
        numbers = self.private_key.public_key().public_numbers()
        return cbor2.dumps({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")})

    def _auth_data(self, rp_id: str, flags: int, count: int, attested: bool = False) -> bytes:
        if self.synced:
            flags |= BE | BS
        data = hashlib.sha256(rp_id.encode()).digest() + bytes([flags | (AT if attested else 0)]) + struct.pack(">I", count)
        if attested:
            data += bytes(16) + struct.pack(">H", len(self.credential_id)) + self.credential_id + self._cose_key()
        return data

    @staticmethod
    def _client_data(kind: str, challenge: str, origin: str) -> bytes:
        return json.dumps({"type": kind, "challenge": challenge, "origin": origin, "crossOrigin": False}).encode()

    def create(self, options: dict, origin: str, *, verified: bool = True) -> dict:
        """navigator.credentials.create(), as JSON."""
        self.user_handle = options["user"]["id"]
        client_data = self._client_data("webauthn.create", options["challenge"], origin)
        auth_data = self._auth_data(options["rp"]["id"], UP | (UV if verified else 0), self._count(), attested=True)
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return {"id": self.id, "rawId": self.id, "type": "public-key", "clientExtensionResults": {},
                "response": {"clientDataJSON": b64url(client_data), "attestationObject": b64url(attestation),
                             "transports": ["usb"]}}

    def get(self, options: dict, origin: str, *, rp_id: str | None = None, verified: bool = True,
            count: int | None = None) -> dict:
        """navigator.credentials.get(), as JSON."""
        client_data = self._client_data("webauthn.get", options["challenge"], origin)
        if count is None:
            if self.counter is not None:
                self.counter += 1
            count = self._count()
        auth_data = self._auth_data(rp_id or options["rpId"], UP | (UV if verified else 0), count)
        signature = self.private_key.sign(auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256()))
        return {"id": self.id, "rawId": self.id, "type": "public-key", "clientExtensionResults": {},
                "response": {"clientDataJSON": b64url(client_data), "authenticatorData": b64url(auth_data),
                             "signature": b64url(signature), "userHandle": self.user_handle}}

    def _count(self) -> int:
        return self.counter or 0
