"""``satvision:fetchsentinel2`` and ``satvision:exporttrainingpairs`` in real QGIS and qgis_process,
against the real earthengine-api talking to the offline fake server."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import rasterio
from earthengine_helpers import service_account_key, user_credentials
from qgis.core import QgsFeature, QgsGeometry, QgsProcessingException, QgsProcessingFeedback, QgsRectangle, QgsVectorLayer
from tests_helpers import qgis_process_json

from satvision.earthengine import offline

EXTENT = "-75.90,-75.86,37.20,37.23 [EPSG:4326]"
DATES = {"START_DATE": "2024-06-01", "END_DATE": "2024-06-30"}


@pytest.fixture
def offline_earth_engine(tmp_path, monkeypatch) -> dict[str, str]:
    """User credentials on disk, the offline backend, a fresh fake server; returns the environment."""
    for variable in ("GOOGLE_APPLICATION_CREDENTIALS", "SATVISION_EE_SERVICE_ACCOUNT_KEY", "SATVISION_EE_PROJECT"):
        monkeypatch.delenv(variable, raising=False)
    home = tmp_path / "home"
    user_credentials(home)
    environment = {"SATVISION_EE_BACKEND": "offline", "HOME": str(home), "CLOUDSDK_CONFIG": str(tmp_path / "no-gcloud")}
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    offline.use_server(offline.FakeEarthEngineServer())
    yield environment
    offline.use_server(None)


def run(algorithm: str, parameters: dict, feedback: QgsProcessingFeedback | None = None) -> dict:
    import processing

    return processing.run(f"satvision:{algorithm}", parameters, feedback=feedback)


class Recorder(QgsProcessingFeedback):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def pushInfo(self, info: str) -> None:  # noqa: N802 - QGIS API
        self.lines.append(info)
        super().pushInfo(info)


def test_fetch_writes_a_georeferenced_geotiff_and_logs_the_scenes(plugin, offline_earth_engine, tmp_path):
    feedback = Recorder()
    output = tmp_path / "s2.tif"
    result = run("fetchsentinel2", {"EXTENT": EXTENT, **DATES, "PROJECT": "my-project", "WATER_LABEL": 1,
                                    "REQUEST_TILE_SIZE": 128, "OUTPUT": str(output)}, feedback)
    assert result["OUTPUT"] == str(output) and result["SCENE_COUNT"] == 3
    assert [scene["date"] for scene in json.loads(result["SCENES"])] == ["2024-06-12", "2024-06-17", "2024-06-27"]
    with rasterio.open(output) as dataset:
        assert dataset.crs.to_epsg() == 32618 and dataset.res == (10.0, 10.0) and dataset.nodata == 0
        assert dataset.descriptions == ("B2", "B3", "B4", "B8", "B11", "B12", "water_label")  # SWIR by default, at 10 m
        assert result["BYTES_FETCHED"] == dataset.width * dataset.height * 7 * 2
    log = "\n".join(feedback.lines)
    assert "20240612T155819_20240612T160709_T18SVH (2024-06-12, 3.1 % cloud)" in log and "Fetched" in log
    assert "test-refresh-token-not-real" not in log


def test_fetch_over_a_polygon_layer_in_another_crs(plugin, offline_earth_engine, tmp_path):
    layer = QgsVectorLayer("Polygon?crs=EPSG:3857", "area", "memory")
    feature = QgsFeature()
    feature.setGeometry(QgsGeometry.fromRect(QgsRectangle(-8449000, 4467000, -8447000, 4469000)))
    layer.dataProvider().addFeatures([feature])
    result = run("fetchsentinel2", {"AREA": layer, **DATES, "PROJECT": "my-project", "BANDS": [3, 7],
                                    "RESOLUTION": 20, "OUTPUT": str(tmp_path / "area.tif")})
    with rasterio.open(result["OUTPUT"]) as dataset:
        assert dataset.descriptions == ("B4", "B8") and dataset.res == (20.0, 20.0) and dataset.crs.to_epsg() == 32618
        assert 79 <= dataset.width <= 82  # 2 km of Web Mercator is ~1.59 km on the ground here: ~80 px of 20 m


@pytest.mark.parametrize(
    ("parameters", "words"),
    [
        ({"EXTENT": "-75.9,-75.9,37.2,37.3 [EPSG:4326]"}, "zero area"),
        ({}, "Give an extent, or a polygon layer"),
        ({"EXTENT": EXTENT, "PROJECT": "My Project"}, "looks like a project \\*name\\*"),
        ({"EXTENT": EXTENT, "WATER_LABEL": 1, "MAX_MEGABYTES": 1}, r"would be 1.7 MB .*x 7 bands.*over the limit of 1.0 MB"),
        ({"EXTENT": EXTENT, "LEVEL": 1, "CLOUD_MASK": 1}, "needs L2A"),
    ],
)
def test_fetch_refusals_name_the_fix(plugin, offline_earth_engine, tmp_path, parameters, words):
    output = tmp_path / "refused.tif"
    with pytest.raises(QgsProcessingException, match=words):
        run("fetchsentinel2", {"PROJECT": "my-project", **DATES, **parameters, "OUTPUT": str(output)})
    assert list(tmp_path.glob("*.tif")) == []


def test_cancelling_the_fetch_leaves_no_file(plugin, offline_earth_engine, tmp_path):
    offline.current_server().latency_s = 0.02
    feedback = QgsProcessingFeedback()
    feedback.progressChanged.connect(lambda value: feedback.cancel() if value > 5 else None)
    with pytest.raises(QgsProcessingException, match="cancelled"):
        run("fetchsentinel2", {"EXTENT": EXTENT, **DATES, "PROJECT": "my-project", "REQUEST_TILE_SIZE": 64,
                               "PARALLEL_REQUESTS": 2, "OUTPUT": str(tmp_path / "s2.tif")}, feedback)
    assert [path.name for path in tmp_path.iterdir() if path.is_file()] == []


def test_export_training_pairs_per_polygon(plugin, offline_earth_engine, tmp_path):
    layer = QgsVectorLayer("Polygon?crs=EPSG:4326&field=name:string", "areas", "memory")
    features = []
    for name, (west, south) in {"bay": (-75.90, 37.20), "inlet": (-75.80, 37.25)}.items():
        feature = QgsFeature(layer.fields())
        feature.setGeometry(QgsGeometry.fromRect(QgsRectangle(west, south, west + 0.01, south + 0.01)))
        feature["name"] = name
        features.append(feature)
    layer.dataProvider().addFeatures(features)
    result = run("exporttrainingpairs", {"AREAS": layer, "NAME_FIELD": "name", **DATES, "PROJECT": "my-project",
                                         "WATER_LABEL": 1, "OUTPUT": str(tmp_path / "pairs")})
    manifest = json.loads(Path(result["MANIFEST"]).read_text())
    assert result["PAIR_COUNT"] == 2 and [pair["area"] for pair in manifest["pairs"]] == ["bay", "inlet"]
    assert manifest["pairs"][0]["label_source"].startswith("UMD/hansen")
    for pair in manifest["pairs"]:
        assert (tmp_path / "pairs" / pair["image"]).is_file() and (tmp_path / "pairs" / pair["label"]).is_file()


def test_fetch_through_qgis_process(qgis_process, offline_earth_engine, tmp_path):
    output = tmp_path / "server.tif"
    answer = qgis_process_json(qgis_process(
        "run", "satvision:fetchsentinel2", "--json", "--",
        f"EXTENT={EXTENT}", "START_DATE=2024-06-01", "END_DATE=2024-06-30", "PROJECT=my-project",
        "COMPOSITE=1", f"OUTPUT={output}", env=offline_earth_engine,
    ))
    assert answer["results"]["SCENE_COUNT"] == 3 and Path(answer["results"]["OUTPUT"]) == output
    with rasterio.open(output) as dataset:
        assert dataset.crs.to_epsg() == 32618 and dataset.count == 6  # B2, B3, B4, B8, B11, B12 by default


def test_qgis_process_with_a_service_account_key_and_without_credentials(qgis_process, offline_earth_engine, tmp_path):
    key = service_account_key(tmp_path / "key.json")
    answer = qgis_process_json(qgis_process(
        "run", "satvision:fetchsentinel2", "--json", "--", f"EXTENT={EXTENT}", "START_DATE=2024-06-01",
        "END_DATE=2024-06-30", "PROJECT=my-project", f"SERVICE_ACCOUNT_KEY={key}", f"OUTPUT={tmp_path / 'sa.tif'}",
        env=offline_earth_engine,
    ))
    assert answer["results"]["SCENE_COUNT"] == 3
    Path(offline_earth_engine["HOME"], ".config", "earthengine", "credentials").unlink()
    completed = qgis_process(
        "run", "satvision:fetchsentinel2", "--", f"EXTENT={EXTENT}", "START_DATE=2024-06-01", "END_DATE=2024-06-30",
        "PROJECT=my-project", f"OUTPUT={tmp_path / 'none.tif'}", env=offline_earth_engine,
    )
    assert completed.returncode != 0
    assert "No Earth Engine credentials found" in completed.stdout + completed.stderr
    assert not (tmp_path / "none.tif").exists()
    assert os.environ.get("SATVISION_EE_BACKEND") == "offline"


def test_a_service_account_key_from_a_qgis_authentication_configuration(plugin, offline_earth_engine, tmp_path):
    from qgis.core import QgsApplication, QgsAuthMethodConfig

    key_text = service_account_key(tmp_path / "key.json").read_text()
    manager = QgsApplication.authManager()
    assert manager.setMasterPassword("test-master-password", True)
    config = QgsAuthMethodConfig("Basic")
    config.setName("Earth Engine service account")
    config.setConfig("username", "fetcher@my-project.iam.gserviceaccount.com")
    config.setConfig("password", key_text)
    assert manager.storeAuthenticationConfig(config)[0]
    Path(offline_earth_engine["HOME"], ".config", "earthengine", "credentials").unlink()  # only the auth config is left
    feedback = Recorder()
    result = run("fetchsentinel2", {"EXTENT": EXTENT, **DATES, "PROJECT": "my-project", "AUTH_CONFIG": config.id(),
                                    "OUTPUT": str(tmp_path / "auth.tif")}, feedback)
    assert result["SCENE_COUNT"] == 3
    log = "\n".join(feedback.lines)
    assert "service account key fetcher@my-project.iam.gserviceaccount.com (QGIS authentication configuration)" in log
    assert "PRIVATE KEY" not in log
