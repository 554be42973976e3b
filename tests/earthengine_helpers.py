"""Helpers for the Earth Engine tests: credentials on disk, a service-account key, expression walking."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

#: A marker inside the test key's private key: it must never show up in logs, outputs or errors.
SECRET_MARKER = "MII"


def user_credentials(home: Path) -> Path:
    """A stand-in for the refresh-token file ``earthengine authenticate`` writes under ``home``."""
    folder = home / ".config" / "earthengine"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "credentials"
    path.write_text(json.dumps({"refresh_token": "test-refresh-token-not-real"}), encoding="utf-8")
    return path


def service_account_key(path: Path, email: str = "fetcher@my-project.iam.gserviceaccount.com") -> Path:
    """A JSON service-account key with a real (freshly generated) RSA private key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    path.write_text(json.dumps({
        "type": "service_account", "project_id": "my-project", "private_key_id": "0123456789abcdef",
        "private_key": pem.decode(), "client_email": email, "client_id": "1",
        "token_uri": "https://oauth2.googleapis.com/token",
    }), encoding="utf-8")
    return path


def private_key_lines(key_file: Path) -> list[str]:
    """The lines of the key's PEM body, to search logs for."""
    pem = json.loads(key_file.read_text())["private_key"]
    return [line for line in pem.splitlines() if line and not line.startswith("-----")]


def invocations(node: Any) -> Iterator[tuple[str, dict]]:
    """Every (functionName, arguments) in a serialised Earth Engine expression."""
    if isinstance(node, dict):
        call = node.get("functionInvocationValue")
        if isinstance(call, dict):
            yield call["functionName"], call.get("arguments", {})
        for value in node.values():
            yield from invocations(value)
    elif isinstance(node, list):
        for value in node:
            yield from invocations(value)


def constants(node: Any) -> list[Any]:
    """Every constant value in a serialised expression."""
    found: list[Any] = []
    if isinstance(node, dict):
        if "constantValue" in node:
            found.append(node["constantValue"])
        for value in node.values():
            found.extend(constants(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(constants(value))
    return found


def function_names(expression: dict) -> set[str]:
    return {name for name, _ in invocations(expression)}
