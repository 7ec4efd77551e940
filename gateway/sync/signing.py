"""Ed25519 signatures on downlink commands: the gateway verifies with the
cloud's public key; the reference cloud and tests sign with the private key."""

from __future__ import annotations

import base64
import binascii

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)


class SigningError(ValueError):
    """A key or signature that cannot be used; the message says what is wrong."""


def load_public_key(text: str) -> Ed25519PublicKey:
    """Read an Ed25519 public key given as PEM or as 32 raw bytes in base64."""
    text = text.strip()
    if text.startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_public_key(text.encode())
        except ValueError:
            raise SigningError("cloud.public_key is not a readable PEM key") from None
        if not isinstance(key, Ed25519PublicKey):
            raise SigningError("cloud.public_key is PEM but not an Ed25519 key")
        return key
    try:
        raw = base64.b64decode(text, validate=True)
    except binascii.Error:
        raise SigningError(
            "cloud.public_key is neither PEM nor base64: give the 32-byte Ed25519 "
            "public key in base64 (44 characters ending in '=')"
        ) from None
    if len(raw) != 32:
        raise SigningError(
            f"cloud.public_key decodes to {len(raw)} bytes; an Ed25519 public key "
            f"is 32 bytes"
        )
    return Ed25519PublicKey.from_public_bytes(raw)


def verify(key: Ed25519PublicKey, signed: bytes, signature_b64: str) -> bool:
    """Return True when the base64 signature is the key's signature of `signed`."""
    try:
        signature = base64.b64decode(signature_b64, validate=True)
        key.verify(signature, signed)
    except (binascii.Error, InvalidSignature, ValueError):
        return False
    return True


def sign(key: Ed25519PrivateKey, signed: bytes) -> str:
    """Return the base64 Ed25519 signature of `signed`."""
    return base64.b64encode(key.sign(signed)).decode()


def public_key_b64(key: Ed25519PrivateKey) -> str:
    """Return the private key's public half as base64 (what the gateway configures)."""
    raw = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return base64.b64encode(raw).decode()


def private_key_from_b64(text: str) -> Ed25519PrivateKey:
    """Read a 32-byte Ed25519 private key (seed) given in base64."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
        return Ed25519PrivateKey.from_private_bytes(raw)
    except (binascii.Error, ValueError):
        raise SigningError(
            "not an Ed25519 private key: expected 32 bytes in base64"
        ) from None


def private_key_b64(key: Ed25519PrivateKey) -> str:
    """Return the private key's 32-byte seed as base64 (keep it secret)."""
    raw = key.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
    return base64.b64encode(raw).decode()
