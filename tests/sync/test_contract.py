"""The contract on paper matches the code: the JSON Schema files, the cloud
config's refusals, and Ed25519 key handling."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from gateway.config.cloud import Cloud
from gateway.sync import schemas
from gateway.sync.signing import load_public_key, public_key_b64, sign, verify

DOCS = Path(__file__).resolve().parents[2] / "docs" / "schemas"


def test_schema_files_are_those_the_code_validates_with() -> None:
    expected = schemas.schema_files()
    on_disk = {p.name: p.read_text("utf-8") for p in DOCS.glob("*.json")}
    assert on_disk == expected, "run: python -m gateway.sync.schemas docs/schemas"


def test_a_site_without_a_public_key_must_say_it_is_a_development_site() -> None:
    with pytest.raises(ValidationError, match="public_key is missing"):
        Cloud(host="broker.example")
    assert Cloud(host="broker.example", development_site=True).development_site


def test_a_public_key_of_the_wrong_length_is_refused_with_what_to_give() -> None:
    with pytest.raises(ValidationError, match="decodes to 3 bytes"):
        Cloud(host="broker.example", public_key="AAAA")


def test_pem_and_base64_keys_verify_the_same_signature() -> None:
    key = Ed25519PrivateKey.generate()
    pem = (
        key.public_key()
        .public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        .decode()
    )
    signature = sign(key, b"command")
    for text in (pem, public_key_b64(key)):
        public = load_public_key(text)
        assert verify(public, b"command", signature)
        assert not verify(public, b"commanD", signature)
        assert not verify(public, b"command", "not base64!")


def test_password_never_shows_in_the_config_repr() -> None:
    cloud = Cloud(host="b", development_site=True, password="hunter2")  # type: ignore[arg-type]
    assert "hunter2" not in repr(cloud)
