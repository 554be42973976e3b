"""Connecting to Earth Engine: the project ID, the credentials, and the client's set-up.

Credentials are looked for in this order: a service-account key given directly (file, or its
JSON text from a QGIS authentication configuration), a service-account key file named by
``SATVISION_EE_SERVICE_ACCOUNT_KEY`` or ``GOOGLE_APPLICATION_CREDENTIALS``, the refresh token
that ``earthengine authenticate`` wrote, and Google application-default credentials. Only
their kind and location are ever reported; key material stays in memory.

How the client reaches the service is a *connector*. The live one initialises the real
client against the high-volume endpoint (the one meant for many parallel synchronous
requests). ``SATVISION_EE_BACKEND=offline`` selects :mod:`.offline`, the same client wired to
a local fake server, which the tests and benchmarks use (there is no network here).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from ..core.dependencies import require
from ..core.options import option
from .credentials import PROJECT_VARIABLES, SERVICE_ACCOUNT, credential_source
from .errors import EarthEngineAuthError, explain, no_credentials_error

HIGH_VOLUME_URL = "https://earthengine-highvolume.googleapis.com"
BACKEND_VARIABLE = "SATVISION_EE_BACKEND"
#: Cloud project IDs: 6–30 lowercase letters, digits and hyphens, starting with a letter and not
#: ending with a hyphen; legacy IDs may carry a domain prefix ("example.com:my-project").
PROJECT_ID = re.compile(r"^(?:[a-z0-9.-]+:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$")
#: Parallel requests unless chosen: the default of the ``max_parallel`` option of
#: :class:`.fetch.FetchSettings`, which sizes the connection pool through :func:`.fetch.connect_for`.
DEFAULT_PARALLEL_REQUESTS = 16


@dataclass(frozen=True)
class ConnectionSettings:
    """What the user told us; everything optional falls back to the environment."""

    project: str | None = option(
        None, label="Earth Engine project ID (empty: the Processing option or SATVISION_EE_PROJECT)",
        help=("ID of a Google Cloud project registered for Earth Engine; empty: SATVISION_EE_PROJECT (in QGIS, first the "
              "Processing option)."))
    service_account_key_file: str | None = option(
        None, flag="--service-account-key", metavar="SERVICE_ACCOUNT_KEY", label="Credentials: service-account key file (JSON)",
        help=("A service-account key file (JSON); empty: the key of the QGIS authentication configuration if given, else your "
              "earthengine authenticate login."))
    #: the JSON text of a service-account key (from a QGIS authentication configuration)
    service_account_key_data: str | None = None
    #: parallel requests the HTTP connection pool must serve without blocking
    max_parallel_requests: int = DEFAULT_PARALLEL_REQUESTS
    #: an httplib2-compatible transport replacing the network (a proxy, or the tests' fake server)
    transport: Any = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class ResolvedCredentials:
    """Credentials ready for ``ee.Initialize``; ``describe`` is safe to log."""

    kind: str
    location: str
    #: ``google.auth`` credentials, or "persistent" to let the client read its stored ones
    value: Any
    service_account: str | None = None

    def describe(self) -> str:
        who = f" {self.service_account}" if self.service_account else ""
        return f"{self.kind}{who} ({self.location})"


@dataclass(frozen=True)
class Connection:
    project: str
    credentials: ResolvedCredentials
    backend: str

    def describe(self) -> str:
        return f"Earth Engine project {self.project}, {self.credentials.describe()}, {self.backend}"


Connector = Callable[[ResolvedCredentials, str, ConnectionSettings], str]


def check_project_id(project: str | None) -> str:
    """The project ID to use, or an error saying how to find it."""
    if not project or not project.strip():
        for variable in PROJECT_VARIABLES:
            if os.environ.get(variable):
                project = os.environ[variable]
                break
    if not project or not project.strip():
        raise EarthEngineAuthError(
            "No Earth Engine project given. Earth Engine needs the ID of a Google Cloud project "
            "registered for Earth Engine: fill in 'Earth Engine project ID' (or set "
            f"{PROJECT_VARIABLES[0]}). Create or register one at https://code.earthengine.google.com/register."
        )
    project = project.strip()
    if project.isdigit():
        return project  # a project number is accepted by the service
    if not PROJECT_ID.match(project):
        hint = re.sub(r"[^a-z0-9-]+", "-", project.lower()).strip("-")
        raise EarthEngineAuthError(
            f"'{project}' is not a Cloud project ID; it looks like a project *name*. Project IDs "
            "are lowercase letters, digits and hyphens (6 to 30 characters, e.g. "
            f"{hint or 'my-project'}-123456): find yours under 'ID' in the project picker of "
            "https://console.cloud.google.com."
        )
    return project


def resolve_credentials(settings: ConnectionSettings) -> ResolvedCredentials:
    """The first credentials available, in the order of :func:`.credentials.credential_source`;
    a key from a QGIS authentication configuration comes before all of them."""
    if settings.service_account_key_data:
        return _service_account(settings.service_account_key_data, "QGIS authentication configuration")
    source = credential_source(settings.service_account_key_file)
    if source is None:
        raise no_credentials_error()
    if source.key_file is None:  # the client reads user and application-default credentials itself
        return ResolvedCredentials(source.kind, source.location, "persistent")
    try:
        text = source.key_file.read_text(encoding="utf-8")
    except OSError as error:
        raise EarthEngineAuthError(
            f"Cannot read the service-account key file {source.key_file} ({error.strerror}). Give the JSON key "
            "downloaded from the Cloud console (IAM > Service accounts > Keys)."
        ) from error
    return _service_account(text, source.location)


def _service_account(key_text: str, where: str) -> ResolvedCredentials:
    try:
        content = json.loads(key_text)
    except ValueError:
        content = None
    if not isinstance(content, dict) or content.get("type") != "service_account" or "private_key" not in content:
        raise EarthEngineAuthError(
            f"The service-account key from the {where} is not a JSON service-account key (it needs "
            "\"type\": \"service_account\", \"client_email\" and \"private_key\"). Download a JSON key in "
            "the Cloud console (IAM > Service accounts > Keys > Add key > JSON)."
        )
    require("ee")
    import ee

    email = content.get("client_email")
    try:
        credentials = ee.ServiceAccountCredentials(email, key_data=key_text)
    except Exception as error:  # noqa: BLE001 - a damaged key: never echo its content
        raise EarthEngineAuthError(
            f"The service-account key of {email} (from the {where}) cannot be used: its private key "
            f"is damaged ({type(error).__name__}). Create a new JSON key in the Cloud console."
        ) from None
    return ResolvedCredentials(SERVICE_ACCOUNT, where, credentials, service_account=email)


def live_connector(credentials: ResolvedCredentials, project: str, settings: ConnectionSettings) -> str:
    """Initialise the real client on the high-volume endpoint; our own code does the retrying."""
    import sys

    import ee
    import requests.adapters

    offline = sys.modules.get(f"{__package__}.offline")
    if offline is not None:  # an offline run earlier in this process replaced parts of the client
        offline.restore_client()
    ee.Reset()
    try:
        ee.Initialize(credentials.value, url=HIGH_VOLUME_URL, http_transport=settings.transport, project=project)
    except Exception as error:  # noqa: BLE001 - every failure is explained
        raise explain(error, project, credentials.kind) from None
    ee.data.setMaxRetries(0)
    session = getattr(ee.data._get_state(), "requests_session", None)  # noqa: SLF001 - pool size only
    if session is not None and settings.transport is None:
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=max(10, settings.max_parallel_requests))
        session.mount("https://", adapter)
    return "live (earthengine-highvolume.googleapis.com)" if settings.transport is None else "live client, custom transport"


def connect(settings: ConnectionSettings, connector: Connector | None = None) -> Connection:
    """Check the project ID, find credentials and initialise the client (errors explained)."""
    require("ee")
    project = check_project_id(settings.project)
    credentials = resolve_credentials(settings)
    if connector is None:
        connector = _connector_from_environment()
    backend = connector(credentials, project, settings)
    return Connection(project=project, credentials=credentials, backend=backend)


def _connector_from_environment() -> Connector:
    backend = os.environ.get(BACKEND_VARIABLE, "live").strip().lower()
    if backend in ("", "live"):
        return live_connector
    if backend == "offline":
        from .offline import offline_connector

        return offline_connector
    raise EarthEngineAuthError(f"{BACKEND_VARIABLE}={backend!r} is not a backend; use 'live' (default) or 'offline'.")
