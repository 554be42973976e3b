"""The real Earth Engine client wired to a local fake server: for tests, benchmarks, demos offline.

The client is initialised the way earthengine-api's own test case (``ee.apitestcase``) does it:
the static algorithm list shipped in the package replaces the server's, and the Cloud API
resource is built from the shipped discovery document on a local HTTP transport. Everything
above the transport is the real client: our expressions are serialised by it and travel as
the JSON bodies of real ``computePixels`` / ``value:compute`` requests.

:class:`FakeEarthEngineServer` answers those requests. Pixels are a deterministic function of
the map position of each pixel (:func:`expected_value`), so a test can check any mosaic for
seams, gaps and shifts without storing reference data. It can delay every request (latency),
fail chosen requests with an HTTP status, refuse a project with the service's real messages,
and it records every request body and how many were in flight at once.

These hooks use private parts of earthengine-api; requirements pin its version.
"""

from __future__ import annotations

import io
import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

OPTIONS_VARIABLE = "SATVISION_EE_OFFLINE_OPTIONS"

#: A few Sentinel-2 scenes the fake server reports for every area (id, time in ms, cloud %).
DEFAULT_SCENES = (
    ("20240612T155819_20240612T160709_T18SVH", 1718207899000, 3.1),
    ("20240617T155821_20240617T160451_T18SVH", 1718639901000, 12.4),
    ("20240627T155821_20240627T160454_T18SVH", 1719503901000, 0.8),
)


def expected_value(band_index: int, column: np.ndarray, row: np.ndarray) -> np.ndarray:
    """The fake server's value of band ``band_index`` at global pixel indices (1 … 9973)."""
    return (1 + (band_index * 7919 + column * 31 + row * 17) % 9973).astype(np.uint16)


def global_indices(transform: dict[str, float], width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Map-position pixel indices (easting / size, northing / size) of a request grid's pixels."""
    size_x, size_y = transform["scaleX"], abs(transform["scaleY"])
    column0 = int(round(transform["translateX"] / size_x))
    row0 = int(round(transform["translateY"] / size_y))
    columns = column0 + np.arange(width)[None, :]
    rows = row0 - np.arange(height)[:, None]
    return np.broadcast_to(columns, (height, width)), np.broadcast_to(rows, (height, width))


@dataclass
class FakeEarthEngineServer:
    """An httplib2-compatible transport answering the Earth Engine REST calls SatVision makes."""

    latency_s: float = 0.0
    scenes: Sequence[tuple[str, int, float]] = DEFAULT_SCENES
    #: scenes over the area before the cloud limit (default: those reported)
    found: int | None = None
    cloud_range: tuple[float, float] | None = None
    #: statuses answered to the first computePixels requests, one per request, in order
    pixel_failures: list[int] = field(default_factory=list)
    #: a status answered to every computePixels request (e.g. 429 forever)
    pixel_status: int | None = None
    #: project ID → (HTTP status, message) answered to every request made for that project
    project_errors: dict[str, tuple[int, str]] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    max_in_flight: int = 0
    bytes_served: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._in_flight = 0

    # httplib2.Http.request signature, as googleapiclient and google-auth-httplib2 call it
    def request(self, uri, method="GET", body=None, headers=None, redirections=None, connection_type=None):  # noqa: ANN001
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            if self.latency_s:
                time.sleep(self.latency_s)
            try:
                payload = json.loads(body) if body else {}
            except (TypeError, ValueError):
                payload = {}  # a form-encoded token request
            authorised = any(key.lower() == "authorization" for key in (headers or {}))
            return self._answer(uri, payload, authorised)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _answer(self, uri: str, payload: dict[str, Any], authorised: bool = False):  # noqa: ANN202
        path = uri.split("?")[0]
        host = path.split("/")[2] if "://" in path else ""
        project = path.split("/projects/")[1].split("/")[0] if "/projects/" in path else ""
        if "$discovery/rest" in path:
            kind = "discovery"
        elif path.endswith("/token"):
            kind = "token"
        elif path.endswith("/algorithms"):
            kind = "algorithms"
        else:
            kind = "pixels" if path.endswith("image:computePixels") else "value" if path.endswith("value:compute") else "other"
        with self._lock:
            self.requests.append({"kind": kind, "project": project, "body": payload, "host": host, "authorised": authorised})
            if kind == "discovery":
                return _json_response(200, _discovery_document(f"https://{host}/"))
            if kind == "token":
                # the offline fake server's placeholder, not a credential
                return _json_response(200, {"access_token": "fake-access-token",  # nosec B105
                                            "expires_in": 3600, "token_type": "Bearer"})  # nosec B105
            failure = None
            if project in self.project_errors:
                failure = self.project_errors[project]
            elif kind == "pixels" and self.pixel_failures:
                failure = (self.pixel_failures.pop(0), "scripted failure")
            elif kind == "pixels" and self.pixel_status:
                failure = (self.pixel_status, "scripted failure")
        if failure:
            status, message = failure
            if message == "scripted failure":
                message = {429: "Too Many Requests: request rate or concurrency exceeded.",
                           500: "An internal error has occurred.", 503: "Service unavailable."}.get(status, message)
            return _json_response(status, {"error": {"code": status, "message": message, "status": "FAILED"}})
        if kind == "algorithms":
            return _json_response(200, _algorithm_list())
        if kind == "pixels":
            return self._pixels(payload)
        if kind == "value":
            return _json_response(200, {"result": self.summary()})
        return _json_response(404, {"error": {"code": 404, "message": f"Not found: {path}", "status": "NOT_FOUND"}})

    def summary(self) -> dict[str, Any]:
        clouds = [cloud for _, _, cloud in self.scenes]
        low, high = self.cloud_range or ((min(clouds), max(clouds)) if clouds else (None, None))
        return {
            "scenes": [list(scene) for scene in self.scenes],
            "found": len(self.scenes) if self.found is None else self.found,
            "cloud_min": low,
            "cloud_max": high,
        }

    def _pixels(self, payload: dict[str, Any]):  # noqa: ANN202
        grid = payload["grid"]
        width, height = grid["dimensions"]["width"], grid["dimensions"]["height"]
        bands = payload.get("bandIds") or ["B1"]
        columns, rows = global_indices(grid["affineTransform"], width, height)
        dtype = np.dtype([(name, "u1" if name == "label" else "<u2") for name in bands])
        array = np.empty((height, width), dtype)
        for index, name in enumerate(bands):
            values = expected_value(index, columns, rows)
            array[name] = values % 2 if name == "label" else values
        buffer = io.BytesIO()
        np.save(buffer, array, allow_pickle=False)
        content = buffer.getvalue()
        with self._lock:
            self.bytes_served += len(content)
        import httplib2

        return httplib2.Response({"status": 200, "content-type": "application/octet-stream"}), content

    def pixel_requests(self) -> list[dict[str, Any]]:
        return [request["body"] for request in self.requests if request["kind"] == "pixels"]


def _json_response(status: int, content: dict[str, Any]):  # noqa: ANN202
    import httplib2

    return httplib2.Response({"status": status, "content-type": "application/json"}), json.dumps(content).encode()


def _client_test_file(name: str) -> dict[str, Any]:
    import ee

    return json.loads((Path(ee.__file__).parent / "tests" / name).read_text(encoding="utf-8"))


def _discovery_document(root_url: str) -> dict[str, Any]:
    """The Cloud API discovery document shipped with the client, served from the host asked."""
    return {**_client_test_file("cloud_api_discovery_document.json"), "rootUrl": root_url}


def _algorithm_list() -> dict[str, Any]:
    """The server's algorithm list as the client's own tests keep it."""
    return _client_test_file("algorithms.json")


_server: FakeEarthEngineServer | None = None
_ORIGINALS: dict[str, Any] = {}


def use_server(server: FakeEarthEngineServer | None) -> None:
    """Make ``server`` answer the offline backend's requests (None: a default one)."""
    global _server
    _server = server


def current_server() -> FakeEarthEngineServer:
    """The server in use; created from ``SATVISION_EE_OFFLINE_OPTIONS`` (JSON) when none is set."""
    global _server
    if _server is None:
        options = json.loads(os.environ.get(OPTIONS_VARIABLE) or "{}")
        _server = FakeEarthEngineServer(**options)
    return _server


def initialise_offline(project: str = "my-project", server: FakeEarthEngineServer | None = None) -> FakeEarthEngineServer:
    """Initialise the real client offline on ``server`` (as ``ee.apitestcase`` does)."""
    import ee
    from ee import _state, apitestcase

    server = server or current_server()
    ee.Reset()
    _ORIGINALS.setdefault("install", ee.data._install_cloud_api_resource)  # noqa: SLF001
    _ORIGINALS.setdefault("algorithms", ee.data.getAlgorithms)
    ee.data._install_cloud_api_resource = lambda: None  # noqa: SLF001 - the documented offline set-up
    ee.data.getAlgorithms = apitestcase.GetAlgorithms
    ee.Initialize(None, "", project=project)
    state = _state.get_state()
    state.cloud_api_resource = apitestcase._GenerateCloudApiResource(server, False)  # noqa: SLF001
    state.cloud_api_resource_raw = apitestcase._GenerateCloudApiResource(server, True)  # noqa: SLF001
    ee.data.setMaxRetries(0)
    return server


def restore_client() -> None:
    """Undo :func:`initialise_offline`'s replacements so the client can go online again."""
    import ee

    if "install" in _ORIGINALS:
        ee.data._install_cloud_api_resource = _ORIGINALS.pop("install")  # noqa: SLF001
        ee.data.getAlgorithms = _ORIGINALS.pop("algorithms")
    ee.Reset()


def offline_connector(credentials: Any, project: str, settings: Any) -> str:
    """The connector of ``SATVISION_EE_BACKEND=offline`` (see :mod:`.connection`)."""
    initialise_offline(project)
    return "offline (local fake Earth Engine server)"
