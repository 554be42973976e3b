"""Earth Engine failures as messages that say what to do.

The client turns every HTTP failure into an ``EEException`` carrying only the server's text;
the HTTP status stays reachable on the exception's context (the ``HttpError`` it was raised
from). :func:`http_status` reads it so that retries can tell "try again" (429, 5xx) from "this
will never work" (other 4xx), and :func:`explain` maps the failures users meet to messages
naming the fix. Messages never contain credentials: only project IDs and e-mail addresses.
"""

from __future__ import annotations

import re

from ..core.errors import SatVisionError

#: HTTP statuses worth retrying: rate limits and server-side failures.
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
ACCESS_GUIDE = "https://developers.google.com/earth-engine/guides/access"


class EarthEngineError(SatVisionError):
    """Earth Engine refused or failed a request in a way the user can fix."""


class EarthEngineAuthError(EarthEngineError):
    """Credentials, project or permissions are missing or wrong."""


class RateLimitExhausted(EarthEngineError):
    """Requests were still refused for rate limits (or server errors) after every retry."""


class EmptyCollectionError(EarthEngineError):
    """No Sentinel-2 scene matches the extent, dates and cloud limit."""


def http_status(error: BaseException) -> int | None:
    """The HTTP status behind an Earth Engine failure, when there was one."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        response = getattr(current, "resp", None)
        status = getattr(response, "status", None)
        if status is not None:
            try:
                return int(status)
            except (TypeError, ValueError):
                return None
        current = current.__cause__ or current.__context__
    return None


def is_retryable(error: BaseException) -> bool:
    """Rate limits, server errors and dropped connections are worth another try."""
    status = http_status(error)
    if status is not None:
        return status in RETRYABLE_STATUSES
    return isinstance(error, (ConnectionError, TimeoutError))


def explain(error: BaseException, project: str | None, credentials_kind: str | None = None) -> SatVisionError:
    """A :class:`SatVisionError` whose message names the cause and the fix.

    ``credentials_kind`` (e.g. "service account key") sharpens the advice where the fix
    differs between user and service-account credentials.
    """
    if isinstance(error, SatVisionError):
        return error
    text = str(error)
    lower = text.lower()
    status = http_status(error)
    name = project or "(none)"
    service_account = bool(credentials_kind and "service account" in credentials_kind)
    if "serviceusage" in lower or "service usage" in lower:
        return EarthEngineAuthError(
            f"Your account may not use the Cloud project {name}: it lacks the permission "
            "serviceusage.services.use. Ask the project's owner to grant you the role "
            "'Service Usage Consumer' (roles/serviceusage.serviceUsageConsumer) in Google Cloud IAM, "
            "wait a few minutes, and run again."
        )
    if "has not been used in project" in lower or "api has not been used" in lower or "is disabled" in lower:
        return EarthEngineAuthError(
            f"The Earth Engine API is not enabled in the Cloud project {name}. Enable it at "
            f"https://console.cloud.google.com/apis/library/earthengine.googleapis.com?project={name}, "
            "wait a few minutes, and run again."
        )
    if "not registered" in lower or "not signed up" in lower:
        if service_account:
            return EarthEngineAuthError(
                f"The service account is not allowed to use Earth Engine with the project {name}. "
                f"Register the project for Earth Engine (https://code.earthengine.google.com/register?project={name}) "
                "and give the service account a role in it (e.g. 'Earth Engine Resource Viewer' and "
                f"'Service Usage Consumer'). See {ACCESS_GUIDE}."
            )
        return EarthEngineAuthError(
            f"The Cloud project {name} is not registered to use Earth Engine. Register it at "
            f"https://code.earthengine.google.com/register?project={name} (free for non-commercial "
            f"use), then run again. See {ACCESS_GUIDE}."
        )
    if status == 404 or ("project" in lower and "not found" in lower):
        return EarthEngineAuthError(
            f"Earth Engine does not know the project '{name}'. Give the project ID (lowercase, "
            "as shown under 'ID' in the Cloud console's project picker, e.g. my-project-123456), "
            "not the project's display name or number."
        )
    if "invalid_grant" in lower or "token has been expired" in lower or "reauthenticat" in lower:
        return EarthEngineAuthError(
            "Your Earth Engine sign-in has expired or was revoked. Run `earthengine authenticate` "
            "again (or use a service-account key file for unattended servers)."
        )
    if "authorize access" in lower or "could not automatically determine credentials" in lower:
        return no_credentials_error()
    if status is None and (isinstance(error, (ConnectionError, TimeoutError)) or "TransportError" in type(error).__name__):
        return EarthEngineError(
            f"Cannot reach Google's servers ({_first_sentence(text)}). Check the network connection and any "
            "proxy (QGIS: Settings > Options > Network; servers: HTTPS_PROXY), then run again."
        )
    if status in (401, 403):
        return EarthEngineAuthError(
            f"Earth Engine refused the request (HTTP {status}: {_first_sentence(text)}). Check that "
            f"the credentials belong to an account with access to the project {name}. See {ACCESS_GUIDE}."
        )
    if status == 400 and ("too large" in lower or "must be less than" in lower):
        return EarthEngineError(
            f"Earth Engine refused a request as too large ({_first_sentence(text)}). Lower "
            "'Request tile size'."
        )
    if status is not None:
        return EarthEngineError(f"Earth Engine failed the request (HTTP {status}): {_first_sentence(text)}")
    return EarthEngineError(f"Earth Engine failed: {_first_sentence(text)}")


def no_credentials_error() -> EarthEngineAuthError:
    return EarthEngineAuthError(
        "No Earth Engine credentials found. Either run `earthengine authenticate` once on this "
        "machine (user credentials), or give a service-account key file (parameter 'Service "
        "account key file', a QGIS authentication configuration, or the environment variable "
        "GOOGLE_APPLICATION_CREDENTIALS) - the usual choice for qgis_process on servers."
    )


def _first_sentence(text: str, limit: int = 300) -> str:
    """The server's message without its details section, shortened."""
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"
