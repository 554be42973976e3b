"""Finding Earth Engine credentials without ever reading or printing a secret.

Reports *where* credentials would come from (a service-account key file, the refresh token
written by ``earthengine authenticate``, or Google application-default credentials) and the
project ID, never their content beyond the service account's e-mail address.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROJECT_VARIABLES = ("SATVISION_EE_PROJECT", "EARTHENGINE_PROJECT", "GOOGLE_CLOUD_PROJECT")
SERVICE_ACCOUNT_VARIABLES = ("SATVISION_EE_SERVICE_ACCOUNT_KEY", "GOOGLE_APPLICATION_CREDENTIALS")


def earthengine_user_credentials_path() -> Path:
    """Where ``earthengine authenticate`` stores its refresh token (the client reads only this path)."""
    return Path(os.path.expanduser("~/.config/earthengine/credentials"))


def application_default_credentials_path() -> Path:
    root = os.environ.get("CLOUDSDK_CONFIG") or (
        Path(os.environ.get("APPDATA", "")) / "gcloud" if os.name == "nt" else Path.home() / ".config" / "gcloud"
    )
    return Path(root) / "application_default_credentials.json"


SERVICE_ACCOUNT = "service account key"
USER = "user credentials (earthengine authenticate)"
APPLICATION_DEFAULT = "application-default credentials"


@dataclass(frozen=True)
class CredentialSource:
    """Where credentials would come from: their kind, a description of the place, the key file."""

    kind: str
    location: str
    key_file: Path | None = None


def credential_source(key_file: str | None = None) -> CredentialSource | None:
    """The first place holding credentials, in SatVision's order; ``None`` when there is none.

    A service-account key file given, then one named by ``SATVISION_EE_SERVICE_ACCOUNT_KEY`` or
    ``GOOGLE_APPLICATION_CREDENTIALS`` (unless the latter holds gcloud user credentials), then the
    refresh token of ``earthengine authenticate``, then application-default credentials.
    """
    if key_file:
        path = Path(key_file).expanduser()
        return CredentialSource(SERVICE_ACCOUNT, f"key file {path}", path)
    for variable in SERVICE_ACCOUNT_VARIABLES:
        candidate = os.environ.get(variable)
        if not candidate:
            continue
        if variable == "GOOGLE_APPLICATION_CREDENTIALS" and _json_type(Path(candidate)) == "authorized_user":
            break  # gcloud user credentials: application-default, read by the client itself
        return CredentialSource(SERVICE_ACCOUNT, f"${variable} {candidate}", Path(candidate).expanduser())
    user_file = earthengine_user_credentials_path()
    if user_file.is_file():
        return CredentialSource(USER, str(user_file))
    adc = Path(os.environ.get("GOOGLE_APPLICATION_CREDENTIALS") or application_default_credentials_path())
    if adc.is_file():
        return CredentialSource(APPLICATION_DEFAULT, str(adc))
    return None


def credentials_status() -> dict[str, Any]:
    """Which credentials and project would be used; no secret is read into the result."""
    status: dict[str, Any] = {"configured": False, "kind": None, "location": None, "project": None}
    for variable in PROJECT_VARIABLES:
        if os.environ.get(variable):
            status["project"] = os.environ[variable]
            status["project_source"] = variable
            break
    source = credential_source()
    if source is None:
        status["problem"] = (
            "no credentials found: run `earthengine authenticate`, or set "
            "GOOGLE_APPLICATION_CREDENTIALS to a service-account key file"
        )
        return status
    status.update(configured=True, kind=source.kind, location=source.location)
    if source.key_file is not None:
        email = _service_account_email(source.key_file)
        status.update(configured=email is not None, service_account=email)
        if email is None:
            status["problem"] = f"{source.key_file} is missing or is not a service-account key file"
    return status


def _json_type(path: Path) -> str | None:
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return content.get("type") if isinstance(content, dict) else None


def _service_account_email(key_file: Path) -> str | None:
    """The ``client_email`` of a service-account key file (public, not a secret), if valid."""
    try:
        content = json.loads(key_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(content, dict) or content.get("type") != "service_account":
        return None
    email = content.get("client_email")
    return email if isinstance(email, str) else None
