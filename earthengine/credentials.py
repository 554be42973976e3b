"""Finding Earth Engine credentials without ever reading or printing a secret.

Reports *where* credentials would come from (a service-account key file, the refresh token
written by ``earthengine authenticate``, or Google application-default credentials) and the
project ID, never their content beyond the service account's e-mail address.
"""

from __future__ import annotations

import json
import os
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


def credentials_status() -> dict[str, Any]:
    """Which credentials and project would be used; no secret is read into the result."""
    status: dict[str, Any] = {"configured": False, "kind": None, "location": None, "project": None}
    for variable in PROJECT_VARIABLES:
        if os.environ.get(variable):
            status["project"] = os.environ[variable]
            status["project_source"] = variable
            break
    for variable in SERVICE_ACCOUNT_VARIABLES:
        key_file = os.environ.get(variable)
        if key_file:
            status.update(kind="service account key", location=f"${variable} → {key_file}")
            email = _service_account_email(Path(key_file))
            status["configured"] = email is not None
            status["service_account"] = email
            if email is None:
                status["problem"] = f"{key_file} is missing or is not a service-account key file"
            return status
    user_file = earthengine_user_credentials_path()
    if user_file.is_file():
        status.update(configured=True, kind="user credentials (earthengine authenticate)", location=str(user_file))
        return status
    adc = application_default_credentials_path()
    if adc.is_file():
        status.update(configured=True, kind="application-default credentials (gcloud)", location=str(adc))
        return status
    status["problem"] = (
        "no credentials found: run `earthengine authenticate`, or set "
        "GOOGLE_APPLICATION_CREDENTIALS to a service-account key file"
    )
    return status


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
