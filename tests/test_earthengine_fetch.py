"""The Earth Engine fetch against the real earthengine-api, offline: expressions, mosaic, retries, errors.

The client is initialised with its own offline test set-up and talks HTTP to a fake server
(``satvision.earthengine.offline``); every assertion on an expression reads the JSON body of the
real request the client sent.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from conftest import RecordingFeedback
from earthengine_helpers import constants, function_names, invocations, private_key_lines, service_account_key, user_credentials

from satvision.core.errors import OperationCancelled, SatVisionError
from satvision.core.utm import utm_crs
from satvision.earthengine import offline
from satvision.earthengine.connection import ConnectionSettings
from satvision.earthengine.download import RetryPolicy
from satvision.earthengine.errors import EarthEngineAuthError, EmptyCollectionError, RateLimitExhausted
from satvision.earthengine.fetch import FetchSettings, fetch_sentinel2, plan
from satvision.earthengine.grid import output_grid, tile_count
from satvision.earthengine.sentinel2 import Sentinel2Query

BOUNDS = (-75.90, 37.20, -75.86, 37.23)  # lon/lat on the Virginia coast: UTM 18N
FAST_RETRY = RetryPolicy(attempts=4, first_delay_s=0.001, max_delay_s=0.004)
PROJECT = "my-project"


@pytest.fixture
def credentials_home(tmp_path, monkeypatch) -> Path:
    """User credentials as `earthengine authenticate` leaves them, and no other credentials."""
    for variable in ("GOOGLE_APPLICATION_CREDENTIALS", "SATVISION_EE_SERVICE_ACCOUNT_KEY", "SATVISION_EE_PROJECT",
                     "EARTHENGINE_PROJECT", "GOOGLE_CLOUD_PROJECT", "CLOUDSDK_CONFIG"):
        monkeypatch.delenv(variable, raising=False)
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "no-gcloud"))
    return user_credentials(home).parent


@pytest.fixture
def server(credentials_home, monkeypatch):
    monkeypatch.setenv("SATVISION_EE_BACKEND", "offline")
    fake = offline.FakeEarthEngineServer()
    offline.use_server(fake)
    yield fake
    offline.use_server(None)


def fetch(tmp_path: Path, query: Sentinel2Query | None = None, **settings) -> tuple:
    query = query or Sentinel2Query("2024-06-01", "2024-06-30")
    settings = {"bounds": BOUNDS, "tile_size": 128, "retry": FAST_RETRY, **settings}
    log: list[str] = []
    result = fetch_sentinel2(query, FetchSettings(**settings), tmp_path / "s2.tif", ConnectionSettings(project=PROJECT),
                             feedback=RecordingFeedback(messages=log))
    return result, log


def only_file_names(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir() if path.is_file())


# --------------------------------------------------------------------------- expressions


def test_a_typical_request_serialises_collection_filters_cloud_mask_composite_and_label(server, tmp_path):
    query = Sentinel2Query("2024-06-01", "2024-06-30", max_cloud=20, water_label="jrc", water_occurrence=50)
    fetch(tmp_path, query)
    pixel_bodies = server.pixel_requests()
    expression = pixel_bodies[0]["expression"]
    assert all(body["expression"] == expression for body in pixel_bodies)  # one expression, many grids
    names = function_names(expression)
    assert {"ImageCollection.load", "Collection.filter", "reduce.median", "Image.linkCollection", "Image.updateMask",
            "Image.gte", "Image.unmask", "Image.addBands", "Image.toUint16"} <= names
    values = constants(expression)
    assert "COPERNICUS/S2_SR_HARMONIZED" in values and "GOOGLE/CLOUD_SCORE_PLUS/V1/S2_HARMONIZED" in values
    assert ["cs_cdf"] in values and 0.6 in values
    assert "JRC/GSW1_4/GlobalSurfaceWater" in values and ["occurrence"] in values and 50 in values
    assert ["B2", "B3", "B4", "B8", "B11", "B12"] in values  # the default: the 6-band water model's bands
    filters = {name: args for name, args in invocations(expression) if name.startswith("Filter.")}
    # "at most 20 %" serialises as not(CLOUDY_PIXEL_PERCENTAGE > 20)
    assert {"Filter.not", "Filter.greaterThan", "Filter.dateRangeContains", "Filter.intersects"} <= set(filters)
    assert "CLOUDY_PIXEL_PERCENTAGE" in constants(filters["Filter.greaterThan"]) and 20 in constants(filters["Filter.greaterThan"])
    assert pixel_bodies[0]["bandIds"] == ["B2", "B3", "B4", "B8", "B11", "B12", "water_label"]
    assert pixel_bodies[0]["fileFormat"] == "NPY"
    dates = [name for name, _ in invocations(expression) if name == "DateRange"]
    assert dates  # the date filter's range; end is the day after the inclusive end date
    assert "2024-07-01" in json.dumps(expression)


@pytest.mark.parametrize(
    ("changes", "present", "absent"),
    [
        ({"cloud_mask": "scl"}, {"Image.remap", "Image.updateMask"}, {"Image.linkCollection"}),
        ({"cloud_mask": "none", "composite": "mosaic"}, {"ImageCollection.mosaic"}, {"Image.updateMask", "reduce.median"}),
        ({"composite": "least_cloudy"}, {"Collection.limit", "Date.getRange", "ImageCollection.mosaic"}, {"reduce.median"}),
        ({"level": "L1C", "water_label": "hansen"}, {"Image.load"}, set()),
        ({"bands": ("B4", "SCL")}, {"reduce.mode", "reduce.median"}, set()),
    ],
)
def test_query_variants_serialise_as_chosen(server, tmp_path, changes, present, absent):
    query = Sentinel2Query("2024-06-01", "2024-06-30", **changes)
    fetch(tmp_path, query)
    expression = server.pixel_requests()[0]["expression"]
    names = function_names(expression)
    assert present <= names and not (absent & names)
    values = constants(expression)
    if query.level == "L1C":
        assert "COPERNICUS/S2_HARMONIZED" in values and "UMD/hansen/global_forest_change_2015" in values and ["datamask"] in values
    if query.cloud_mask == "scl":
        assert [3, 8, 9, 10] in values


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"level": "L1C", "cloud_mask": "scl"}, "needs L2A"),
        ({"level": "L1C", "bands": ("B4", "SCL")}, "SCL exists only in L2A"),
        ({"bands": ("B4", "B99")}, "no band B99"),
        ({"end": "2024-05-01"}, "before the start date"),
        ({"start": "2024/06/01"}, "YYYY-MM-DD"),
        ({"bands": ()}, "pick at least one"),
    ],
)
def test_bad_queries_say_what_to_change(changes, words):
    arguments = {"start": "2024-06-01", "end": "2024-06-30", **changes}
    with pytest.raises(SatVisionError, match=words):
        Sentinel2Query(**arguments)


# --------------------------------------------------------------------------- grid and mosaic


def test_utm_zone_of_the_centre_and_a_snapped_grid():
    assert utm_crs(-75.9, 37.2).to_epsg() == 32618 and utm_crs(151.2, -33.9).to_epsg() == 32756
    grid = output_grid(BOUNDS, "EPSG:4326", 10.0)
    assert grid.crs.to_epsg() == 32618
    assert grid.transform.a == 10 and grid.transform.e == -10
    assert grid.transform.c % 10 == 0 and grid.transform.f % 10 == 0
    with pytest.raises(SatVisionError, match="zero area"):
        output_grid((-75.9, 37.2, -75.9, 37.3), "EPSG:4326", 10.0)
    with pytest.raises(SatVisionError, match="geographic"):
        output_grid(BOUNDS, "EPSG:4326", 10.0, crs="EPSG:4326")


def test_the_mosaic_is_exact_with_no_seam_gap_or_overlap(server, tmp_path):
    result, log = fetch(tmp_path, tile_size=100)
    expected_grid = output_grid(BOUNDS, "EPSG:4326", 10.0)
    bodies = server.pixel_requests()
    assert len(bodies) == tile_count(expected_grid, 100) > 4
    covered = np.zeros((expected_grid.height, expected_grid.width), np.int32)
    for body in bodies:  # every requested grid is a window of the output grid, each pixel requested once
        transform = body["grid"]["affineTransform"]
        column = round((transform["translateX"] - expected_grid.transform.c) / 10)
        row = round((expected_grid.transform.f - transform["translateY"]) / 10)
        size = body["grid"]["dimensions"]
        assert body["grid"]["crsCode"] == "EPSG:32618" and size["width"] <= 100 and size["height"] <= 100
        covered[row : row + size["height"], column : column + size["width"]] += 1
    assert (covered == 1).all()
    with rasterio.open(result.path) as dataset:
        assert dataset.crs.to_epsg() == 32618
        assert dataset.transform == expected_grid.transform
        assert (dataset.width, dataset.height) == (expected_grid.width, expected_grid.height)
        assert dataset.descriptions == ("B2", "B3", "B4", "B8", "B11", "B12") and dataset.nodata == 0
        assert dataset.tags()["reflectance_scale"] == "10000"
        pixels = dataset.read()
    transform = {"scaleX": 10.0, "scaleY": -10.0, "translateX": expected_grid.transform.c, "translateY": expected_grid.transform.f}
    columns, rows = offline.global_indices(transform, expected_grid.width, expected_grid.height)
    for band in range(4):
        np.testing.assert_array_equal(pixels[band], offline.expected_value(band, columns, rows))
    assert any("20240627T155821_20240627T160454_T18SVH (2024-06-27, 0.8 % cloud)" in line for line in log)
    assert result.stats.bytes == pixels.nbytes


# --------------------------------------------------------------------------- retries and cancellation


def test_rate_limits_and_server_errors_are_retried(server, tmp_path):
    server.pixel_failures.extend([429, 500, 503, 429])
    result, _ = fetch(tmp_path)
    assert result.stats.retries == 4
    assert result.stats.requests == tile_count(result.grid, 128) + 4
    assert result.path.is_file()


def test_a_client_error_fails_at_once_without_retrying(server, tmp_path):
    server.pixel_failures.append(400)
    with pytest.raises(SatVisionError, match="HTTP 400"):
        fetch(tmp_path, max_parallel=1)
    grids = [json.dumps(body["grid"], sort_keys=True) for body in server.pixel_requests()]
    assert grids.count(grids[0]) == 1  # the refused tile was not asked again
    assert len(grids) <= 2  # the one worker may have started the next tile before the failure was seen
    assert only_file_names(tmp_path) == []


def test_rate_limits_that_never_end_give_up_with_advice(server, tmp_path):
    server.pixel_status = 429
    with pytest.raises(RateLimitExhausted, match=r"429.*after 4 attempts.*Parallel requests"):
        fetch(tmp_path, max_parallel=2)
    assert only_file_names(tmp_path) == []


def test_cancelling_stops_the_requests_and_writes_nothing(server, tmp_path):
    server.latency_s = 0.02
    reported: list[float] = []
    query = Sentinel2Query("2024-06-01", "2024-06-30")
    settings = FetchSettings(bounds=BOUNDS, tile_size=32, max_parallel=2, retry=FAST_RETRY)
    total = tile_count(output_grid(BOUNDS, "EPSG:4326", 10.0), 32)
    with pytest.raises(OperationCancelled):
        fetch_sentinel2(query, settings, tmp_path / "s2.tif", ConnectionSettings(project=PROJECT),
                        feedback=RecordingFeedback(fractions=reported, cancel_when=lambda: any(fraction > 0.05 for fraction in reported)))
    assert len(server.pixel_requests()) < total / 2
    assert only_file_names(tmp_path) == []


def test_an_area_over_the_size_limit_is_refused_before_any_request(server, tmp_path):
    with pytest.raises(SatVisionError, match=r"would be 1\.5 MB \(359 x 337 px x 6 bands at 10 m\), over the limit of 500\.0 kB"):
        fetch(tmp_path, max_megabytes=0.5)
    assert server.requests == []
    grid, tile_size, estimated = plan(Sentinel2Query("2024-06-01", "2024-06-30"), FetchSettings(bounds=BOUNDS))
    assert estimated == grid.width * grid.height * 6 * 2 and tile_size == 512


def test_an_empty_collection_says_how_many_scenes_were_too_cloudy(server, tmp_path):
    server.scenes, server.found, server.cloud_range = [], 7, (34.0, 98.0)
    with pytest.raises(EmptyCollectionError, match=r"at most 20 % cloud: 7 scenes cover the extent.*34-98 %"):
        fetch(tmp_path)
    server.found = 0
    with pytest.raises(EmptyCollectionError, match="No Sentinel-2 L2A scene covers the extent"):
        fetch(tmp_path)
    assert server.pixel_requests() == [] and only_file_names(tmp_path) == []


# --------------------------------------------------------------------------- authentication


def fetch_with(tmp_path: Path, **connection) -> None:
    fetch_sentinel2(Sentinel2Query("2024-06-01", "2024-06-30"), FetchSettings(bounds=BOUNDS, retry=FAST_RETRY),
                    tmp_path / "s2.tif", ConnectionSettings(**connection))


def test_no_credentials(server, credentials_home, tmp_path):
    (credentials_home / "credentials").unlink()
    with pytest.raises(EarthEngineAuthError, match="No Earth Engine credentials found.*earthengine authenticate.*service-account key"):
        fetch_with(tmp_path, project=PROJECT)


def test_no_project_and_a_project_name_instead_of_its_id(server, tmp_path):
    with pytest.raises(EarthEngineAuthError, match="No Earth Engine project given"):
        fetch_with(tmp_path)
    with pytest.raises(EarthEngineAuthError, match=r"'My Flood Project' is not a Cloud project ID.*my-flood-project-123456"):
        fetch_with(tmp_path, project="My Flood Project")


@pytest.mark.parametrize(
    ("status", "server_message", "words"),
    [
        (403, "Project unregistered-project is not registered to use Earth Engine. Visit "
              "https://code.earthengine.google.com/register?project=unregistered-project to register your project.",
         r"not registered to use Earth Engine. Register it at https://code.earthengine.google.com/register\?project=unregistered-project"),
        (403, "Caller does not have required permission to use project unregistered-project. Grant the caller the "
              "roles/serviceusage.serviceUsageConsumer role, or a custom role with the serviceusage.services.use permission.",
         r"lacks the permission serviceusage.services.use.*Service Usage Consumer"),
        (403, "Google Earth Engine API has not been used in project unregistered-project before or it is disabled.",
         "Earth Engine API is not enabled"),
        (404, "Project 'projects/unregistered-project' not found or deleted.", "Give the project ID"),
    ],
)
def test_server_refusals_are_explained(server, tmp_path, status, server_message, words):
    server.project_errors["unregistered-project"] = (status, server_message)
    with pytest.raises(EarthEngineAuthError, match=words):
        fetch_with(tmp_path, project="unregistered-project")
    assert only_file_names(tmp_path) == []


def test_an_unregistered_service_account_and_no_secret_in_messages_or_logs(server, tmp_path, capfd):
    key = service_account_key(tmp_path / "key.json")
    server.project_errors["sa-project"] = (403, "Not signed up for Earth Engine or project is not registered.")
    with pytest.raises(EarthEngineAuthError, match="service account is not allowed to use Earth Engine") as refused:
        fetch_with(tmp_path, project="sa-project", service_account_key_file=str(key))
    server.project_errors.clear()
    log: list[str] = []
    fetch_sentinel2(Sentinel2Query("2024-06-01", "2024-06-30"), FetchSettings(bounds=BOUNDS), tmp_path / "ok.tif",
                    ConnectionSettings(project="sa-project", service_account_key_file=str(key)),
                    feedback=RecordingFeedback(messages=log))
    assert any("service account key fetcher@my-project.iam.gserviceaccount.com" in line for line in log)
    captured = capfd.readouterr()
    with rasterio.open(tmp_path / "ok.tif") as dataset:
        metadata = json.dumps(dataset.tags())
    everything = "\n".join([str(refused.value), *log, captured.out, captured.err, metadata, json.dumps(server.requests)])
    for line in private_key_lines(key):
        assert line not in everything


def test_a_damaged_key_file_is_named_without_echoing_it(server, tmp_path):
    key = tmp_path / "key.json"
    key.write_text(json.dumps({"type": "service_account", "client_email": "a@b.iam.gserviceaccount.com",
                               "private_key": "-----BEGIN PRIVATE KEY-----\nnot-a-key-SECRET\n-----END PRIVATE KEY-----\n"}))
    with pytest.raises(EarthEngineAuthError, match="private key is damaged") as refused:
        fetch_with(tmp_path, project=PROJECT, service_account_key_file=str(key))
    assert "SECRET" not in str(refused.value)
    (tmp_path / "user.json").write_text(json.dumps({"type": "authorized_user"}))
    with pytest.raises(EarthEngineAuthError, match="not a JSON service-account key"):
        fetch_with(tmp_path, project=PROJECT, service_account_key_file=str(tmp_path / "user.json"))


# --------------------------------------------------------------------------- training pairs


def test_training_pairs_are_what_the_segmentation_dataset_reads(server, tmp_path):
    from satvision.earthengine.training_pairs import Area, export_training_pairs
    from satvision.training.segmentation_pairs import Region, find_pairs
    from satvision.training.segmentation_sampling import PatchSource

    areas = [Area("lagoon", (-75.90, 37.20, -75.88, 37.22)), Area("coast", (436730.0, 4167460.0, 438010.0, 4168740.0), "EPSG:32618")]
    query = Sentinel2Query("2024-06-01", "2024-06-30", water_label="jrc")
    manifest = export_training_pairs(areas, query, FetchSettings(bounds=BOUNDS, tile_size=64, retry=FAST_RETRY),
                                     tmp_path / "pairs", ConnectionSettings(project=PROJECT))
    entries = json.loads(manifest.read_text())["pairs"]
    assert [entry["area"] for entry in entries] == ["lagoon", "coast"]
    assert entries[0]["label_source"] == "JRC/GSW1_4/GlobalSurfaceWater occurrence >= 50 %"
    assert [scene["id"] for scene in entries[0]["scenes"]] == [scene[0] for scene in offline.DEFAULT_SCENES]
    pairs = find_pairs(tmp_path / "pairs")
    source = PatchSource(["B2", "B3", "B4", "B8"])
    source.check(pairs)
    for pair in pairs:
        with rasterio.open(pair.image) as image, rasterio.open(pair.label) as label:
            assert (image.crs, image.transform, image.shape) == (label.crs, label.transform, label.shape)
            assert label.nodata == 255 and set(np.unique(label.read(1))) <= {0, 1}
            width, height = image.width, image.height
        sample = source.reader(pair).read(Region(pair, 0, height, width, height), 0, 0, 64)
        assert sample.values.shape == (4, 64, 64) and set(np.unique(sample.label)) <= {0, 1, 255}
    label_bodies = [body for body in server.pixel_requests() if body["bandIds"] == ["label"]]
    assert label_bodies and "Image.where" in function_names(label_bodies[0]["expression"])


def test_cli_fetch_sentinel2_writes_the_geotiff(server, tmp_path, capsys):
    from satvision.cli.main import main

    code = main(["fetch", "sentinel2", f"--bounds={','.join(map(str, BOUNDS))}", "--start", "2024-06-01", "--end", "2024-06-30",
                 "--project", PROJECT, "--water-label", "hansen", "--output", str(tmp_path / "cli.tif"), "--quiet"])
    assert code == 0
    assert "bands B2,B3,B4,B8,B11,B12,water_label, 3 scenes" in capsys.readouterr().out
    with rasterio.open(tmp_path / "cli.tif") as dataset:
        assert dataset.count == 7 and dataset.descriptions[-1] == "water_label"
    assert main(["fetch", "sentinel2", "--bounds", "1,2,3", "--start", "2024-06-01", "--end", "2024-06-30",
                 "--output", str(tmp_path / "x.tif")]) == 2
    assert "four numbers" in capsys.readouterr().err


def test_cli_dry_run_prints_the_plan_and_the_serialised_request_without_sending_it(server, capsys):
    from satvision.cli.main import main

    assert main(["fetch", "sentinel2", f"--bounds={','.join(map(str, BOUNDS))}", "--start", "2024-06-01",
                 "--end", "2024-06-30", "--composite", "mosaic", "--dry-run"]) == 0
    report = json.loads(capsys.readouterr().out)
    grid = output_grid(BOUNDS, "EPSG:4326", 10.0)
    assert report["grid"] == {"crs": "EPSG:32618", "transform": list(grid.transform)[:6], "width": grid.width, "height": grid.height}
    assert report["requests"] == 1 and report["bands"] == ["B2", "B3", "B4", "B8", "B11", "B12"]
    request = report["first_request"]
    assert "ImageCollection.mosaic" in function_names(request["expression"])
    assert request["grid"]["dimensions"] == {"width": grid.width, "height": grid.height}
    assert server.requests == []


# --------------------------------------------------------------------------- the live connector


def test_the_live_client_with_a_service_account_reaches_the_high_volume_endpoint(credentials_home, tmp_path):
    """The real ee.Initialize, token exchange, discovery and algorithm list, with the network replaced."""
    from satvision.earthengine.connection import connect, live_connector

    key = service_account_key(tmp_path / "key.json")
    server = offline.FakeEarthEngineServer()
    settings = ConnectionSettings(project=PROJECT, service_account_key_file=str(key), transport=server)
    connection = connect(settings, connector=live_connector)
    assert connection.credentials.service_account == "fetcher@my-project.iam.gserviceaccount.com"
    fetch_sentinel2(Sentinel2Query("2024-06-01", "2024-06-30"), FetchSettings(bounds=BOUNDS), tmp_path / "live.tif", connection=connection)
    kinds = [request["kind"] for request in server.requests]
    assert kinds[0] == "token" and {"discovery", "algorithms", "value", "pixels"} <= set(kinds)
    earth_engine = [request for request in server.requests if request["kind"] != "token"]
    assert all(request["host"] == "earthengine-highvolume.googleapis.com" and request["authorised"] for request in earth_engine)
    assert {request["project"] for request in earth_engine if request["project"]} == {PROJECT}
    server.project_errors["other-project"] = (403, "Project other-project is not registered to use Earth Engine.")
    with pytest.raises(EarthEngineAuthError, match="service account is not allowed"):
        connect(ConnectionSettings(project="other-project", service_account_key_file=str(key), transport=server),
                connector=live_connector)
    offline.restore_client()
