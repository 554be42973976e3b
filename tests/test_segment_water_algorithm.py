"""``satvision:segmentwater`` end to end in real QGIS and qgis_process, and its error messages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from osgeo import ogr
from qgis.core import QgsProcessingException, QgsProcessingFeedback
from tests_helpers import qgis_process_json

from satvision.core.raster import Grid, open_raster, write_geotiff
from satvision.models.architectures import build_network
from satvision.models.modelfile import save_model

BANDS = ["B2", "B3", "B4", "B8"]


@pytest.fixture(scope="module")
def water_model(tmp_path_factory) -> Path:
    """A tiny UNet trained for a few steps to call low-NIR pixels water: a real model file."""
    from conftest import tiny_unet_card

    card = tiny_unet_card(tiling={"tile_size": 128, "overlap": 16})
    torch.manual_seed(0)
    network = build_network(card)
    optimiser = torch.optim.Adam(network.parameters(), lr=3e-3)
    from satvision.models.normalisation import normalise

    for _ in range(40):
        values = torch.rand(8, 4, 64, 64) * 3000 + 200
        target = (values[:, 3] < values[:, 1]).long()  # NIR below green: "water"
        loss = torch.nn.functional.cross_entropy(network(normalise(values, card.normalisation)), target)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return save_model(tmp_path_factory.mktemp("models") / "tiny-water.safetensors", network.state_dict(), card)


def run(parameters: dict, feedback: QgsProcessingFeedback | None = None) -> dict:
    import processing

    return processing.run("satvision:segmentwater", parameters, feedback=feedback)


def test_water_polygons_from_the_real_scene(plugin, scene, water_model, tmp_path):
    output = tmp_path / "out" / "water.gpkg"
    results = run({
        "INPUT": str(scene), "MODEL": str(water_model), "OUTPUT": str(output),
        "PROBABILITY": str(tmp_path / "out" / "probability.tif"), "MASK": str(tmp_path / "out" / "mask.tif"),
        "EXTENT": "436730,446730,4164460,4174460 [EPSG:32618]", "BATCH_SIZE": 4, "MIN_AREA": 200, "SIMPLIFY": 0,
    })
    assert results["OUTPUT"] == str(output) and results["POLYGON_COUNT"] > 0 and results["TILE_COUNT"] > 0
    assert results["DEVICE_USED"].startswith("cpu")
    with open_raster(tmp_path / "out" / "mask.tif") as mask:
        assert mask.crs.to_epsg() == 32618 and mask.shape == (1000, 1000)
        assert mask.transform.c == 436730 and mask.transform.f == 4174460
        water_pixels = int((mask.read(1) == 1).sum())
    source = ogr.Open(str(output))
    layer = source.GetLayer(0)
    epsg = layer.GetSpatialRef().GetAuthorityCode(None)
    definition = layer.GetLayerDefn()
    fields = {definition.GetFieldDefn(i).GetName() for i in range(definition.GetFieldCount())}
    areas = [feature.GetField("area_m2") for feature in layer]
    del layer, definition, source  # close before QGIS exits: GDAL objects freed later crash the process
    assert epsg == "32618"
    assert fields >= {"area_m2", "perimeter_m", "mean_probability"}
    assert min(areas) >= 200 and sum(areas) <= water_pixels * 100 + 1e-6 * water_pixels
    assert results["WATER_AREA_M2"] == pytest.approx(sum(areas))


def test_bands_can_be_mapped_by_position(plugin, scene, water_model, tmp_path):
    shuffled = tmp_path / "shuffled.tif"
    with open_raster(scene) as source:
        grid = Grid(source.crs, source.transform, 300, 200)
        values = source.read(window=((0, 200), (0, 300)))
    with write_geotiff(shuffled, grid, 4, "uint16", nodata=0, band_names=["nir", "x", "y", "z"]) as writer:
        writer.write(values[[3, 0, 1, 2]])
    with pytest.raises(QgsProcessingException, match="lacks band"):
        run({"INPUT": str(shuffled), "MODEL": str(water_model), "OUTPUT": str(tmp_path / "a.gpkg")})
    results = run({"INPUT": str(shuffled), "MODEL": str(water_model), "BANDS": [2, 3, 4, 1], "OUTPUT": str(tmp_path / "b.gpkg")})
    assert Path(results["OUTPUT"]).exists()


def test_a_nodata_raster_gives_no_polygons_and_a_warning(plugin, water_model, tmp_path):
    empty = tmp_path / "empty.tif"
    grid = Grid(rasterio.crs.CRS.from_epsg(32618), rasterio.transform.from_origin(435730, 4179460, 10, 10), 300, 200)
    with write_geotiff(empty, grid, 4, "uint16", nodata=0, band_names=BANDS) as writer:
        writer.write(np.zeros((4, 200, 300), np.uint16))
    feedback = _RecordingFeedback()
    results = run({"INPUT": str(empty), "MODEL": str(water_model), "OUTPUT": str(tmp_path / "w.gpkg")}, feedback)
    assert results["POLYGON_COUNT"] == 0
    assert any("no valid pixels" in message for message in feedback.errors)


@pytest.mark.parametrize(("width", "height"), [(50, 40), (131, 257)])
def test_small_and_uneven_rasters(plugin, scene, water_model, tmp_path, width, height):
    small = tmp_path / "small.tif"
    with open_raster(scene) as source:
        grid = Grid(source.crs, source.transform, width, height)
        values = source.read(window=((900, 900 + height), (900, 900 + width)))
    with write_geotiff(small, grid, 4, "uint16", nodata=0, band_names=BANDS) as writer:
        writer.write(values)
    results = run({"INPUT": str(small), "MODEL": str(water_model), "OUTPUT": str(tmp_path / "w.gpkg"), "MASK": str(tmp_path / "m.tif")})
    with open_raster(tmp_path / "m.tif") as mask:
        assert mask.shape == (height, width) and (mask.read(1) != 255).all()
    assert results["TILE_COUNT"] >= 1


def test_too_few_bands_name_the_missing_ones(plugin, scene, water_model, tmp_path):
    rgb = tmp_path / "rgb.tif"
    with open_raster(scene) as source:
        grid = Grid(source.crs, source.transform, 200, 200)
        values = source.read([3, 2, 1], window=((0, 200), (0, 200)))
    with write_geotiff(rgb, grid, 3, "uint16", band_names=["B4", "B3", "B2"]) as writer:
        writer.write(values)
    with pytest.raises(QgsProcessingException, match="lacks band\\(s\\) B8"):
        run({"INPUT": str(rgb), "MODEL": str(water_model), "OUTPUT": str(tmp_path / "w.gpkg")})


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_a_raster_without_crs_is_refused(plugin, water_model, tmp_path):
    path = tmp_path / "nocrs.tif"
    with rasterio.open(path, "w", driver="GTiff", width=64, height=64, count=4, dtype="uint16") as dataset:
        dataset.write(np.full((4, 64, 64), 500, np.uint16))
    with pytest.raises(QgsProcessingException, match="no coordinate reference system"):
        run({"INPUT": str(path), "MODEL": str(water_model), "OUTPUT": str(tmp_path / "w.gpkg")})


def test_a_classification_model_is_refused(plugin, scene, tmp_path, make_card):
    card = make_card(task="classification", architecture={"id": "vit", "params": {}})
    classifier = save_model(tmp_path / "classifier.safetensors", {"head.weight": torch.zeros(2, 2)}, card)
    with pytest.raises(QgsProcessingException, match="is a classification model.*needs a segmentation model"):
        run({"INPUT": str(scene), "MODEL": str(classifier), "OUTPUT": str(tmp_path / "w.gpkg")})


def test_an_unreadable_model_file_is_refused(plugin, scene, water_model, tmp_path):
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(water_model.read_bytes()[:1000])
    with pytest.raises(QgsProcessingException, match="damaged or truncated"):
        run({"INPUT": str(scene), "MODEL": str(broken), "OUTPUT": str(tmp_path / "w.gpkg")})
    with pytest.raises(QgsProcessingException, match="No segmentation model named 'no-such-model'"):
        run({"INPUT": str(scene), "MODEL": "no-such-model", "OUTPUT": str(tmp_path / "w.gpkg")})


def test_an_unwritable_output_folder_is_refused(plugin, scene, water_model, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(QgsProcessingException, match="output folder"):
        run({"INPUT": str(scene), "MODEL": str(water_model), "OUTPUT": str(blocker / "w.gpkg")})


class _RecordingFeedback(QgsProcessingFeedback):
    def __init__(self, cancel_after: float | None = None) -> None:
        super().__init__()
        self.errors: list[str] = []
        self.cancel_after = cancel_after

    def reportError(self, error, fatalError=False):  # noqa: N802
        self.errors.append(error)

    def setProgress(self, progress):  # noqa: N802
        super().setProgress(progress)
        if self.cancel_after is not None and progress >= self.cancel_after:
            self.cancel()


def test_cancellation_mid_run_leaves_no_files(plugin, scene, water_model, tmp_path):
    folder = tmp_path / "outputs"
    folder.mkdir()
    feedback = _RecordingFeedback(cancel_after=20.0)
    with pytest.raises(QgsProcessingException, match="Cancelled"):
        run({"INPUT": str(scene), "MODEL": str(water_model), "OUTPUT": str(folder / "w.gpkg"),
             "PROBABILITY": str(folder / "p.tif"), "MASK": str(folder / "m.tif")}, feedback)
    assert list(folder.iterdir()) == []


def test_segmentwater_through_qgis_process(qgis_process, scene, water_model, tmp_path):
    answer = qgis_process_json(qgis_process(
        "run", "satvision:segmentwater", "--json", "--",
        f"INPUT={scene}", f"MODEL={water_model}", f"OUTPUT={tmp_path / 'water.gpkg'}",
        f"PROBABILITY={tmp_path / 'probability.tif'}", "EXTENT=436730,441730,4169460,4174460 [EPSG:32618]",
    ))
    results = answer["results"]
    assert Path(results["OUTPUT"]).exists() and results["POLYGON_COUNT"] > 0
    with open_raster(tmp_path / "probability.tif") as probability:
        assert probability.crs.to_epsg() == 32618 and probability.shape == (500, 500)
        assert probability.descriptions == ("water_probability",)
