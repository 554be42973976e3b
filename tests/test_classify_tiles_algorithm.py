"""``satvision:classifytiles`` end to end in real QGIS and qgis_process: outputs, style, log, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from osgeo import ogr
from qgis.core import (
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProject,
    QgsRenderContext,
)
from qgis.PyQt.QtCore import Qt
from rasterio.transform import from_origin
from tests_helpers import qgis_process_json

from satvision.core.raster import Grid, open_raster, write_geotiff
from satvision.inference.classify_job import probability_field
from satvision.models.catalog import BUNDLED_MODELS_DIR

BANDS = ["B2", "B3", "B4", "B8"]
CLASSES = {"AnnualCrop": "#e6c84b", "Forest": "#1b7837", "River": "#4393c3", "SeaLake": "#08306b"}  # the tiny card's
FIELDS = {"column", "row", "class", "class_index", "confidence", "class_2", "prob_2", "class_3", "prob_3",
          "valid_share", "status", *(probability_field(name) for name in CLASSES)}
SCENE_EXTENT = "436730,443130,4167460,4173860 [EPSG:32618]"  # 640 × 640 px inside the scene: 10 × 10 tiles of 64


def run(parameters: dict, feedback: QgsProcessingFeedback | None = None) -> dict:
    import processing

    return processing.run("satvision:classifytiles", parameters, feedback=feedback)


def synthetic_raster(path: Path, width: int, height: int, *, nodata_from_column: int | None = None) -> Path:
    rng = np.random.default_rng(width + 3 * height)
    values = rng.integers(300, 3000, size=(4, height, width), dtype=np.uint16)
    if nodata_from_column is not None:
        values[:, :, nodata_from_column:] = 0
    grid = Grid(rasterio.crs.CRS.from_epsg(32618), from_origin(435730, 4179460, 10, 10), width, height)
    with write_geotiff(path, grid, 4, "uint16", nodata=0, band_names=BANDS) as writer:
        writer.write(values)
    return path


def read_layer(path: Path) -> tuple[str, set[str], list[dict]]:
    """EPSG code, field names and the attributes of every feature of a vector file (closed after)."""
    dataset = ogr.Open(str(path))
    layer = dataset.GetLayer(0)
    epsg = layer.GetSpatialRef().GetAuthorityCode(None)
    definition = layer.GetLayerDefn()
    names = [definition.GetFieldDefn(i).GetName() for i in range(definition.GetFieldCount())]
    features = [{name: feature.GetField(name) for name in names} for feature in layer]
    del definition, layer, dataset  # close before QGIS exits: GDAL objects freed later crash the process
    return epsg, set(names), features


class RecordingFeedback(QgsProcessingFeedback):
    """Keeps info lines and warnings; cancels once progress reaches ``cancel_after`` percent."""

    def __init__(self, cancel_after: float | None = None) -> None:
        super().__init__()
        self.infos: list[str] = []
        self.warnings: list[str] = []
        self.cancel_after = cancel_after

    def pushInfo(self, info):  # noqa: N802
        self.infos.append(info)

    def pushWarning(self, warning):  # noqa: N802
        self.warnings.append(warning)

    def setProgress(self, progress):  # noqa: N802
        super().setProgress(progress)
        if self.cancel_after is not None and progress >= self.cancel_after:
            self.cancel()


def test_tiles_of_the_real_scene(plugin, scene, saved_classifier, tmp_path):
    output = tmp_path / "out" / "tiles.gpkg"
    feedback = RecordingFeedback()
    results = run({
        "INPUT": str(scene), "MODEL": str(saved_classifier), "TILE_SIZE": 64, "OUTPUT": str(output),
        "OUTPUT_CLASS_RASTER": str(tmp_path / "out" / "classes.tif"), "DEVICE": 1,
    }, feedback)
    epsg, fields, features = read_layer(output)
    # 1933 × 1947 px in tiles of 64: 31 × 31, the last column and row padded
    assert results["OUTPUT"] == str(output) and results["TILE_COUNT"] == len(features) == 31 * 31
    assert epsg == "32618" and FIELDS <= fields
    nodata = [f for f in features if f["status"] == "nodata"]
    assert results["SKIPPED_TILES"] == len(nodata) > 0 and all(f["class"] is None for f in nodata)
    assert results["DEVICE_USED"].startswith("cpu")
    classified = [f["class"] for f in features if f["status"] == "classified"]
    probabilities = json.loads(results["PROBABILITIES"])  # grid mode: the share of classified tiles per class
    assert results["CLASS"] == max(CLASSES, key=classified.count)  # the majority; a tie goes to the first class
    assert results["CONFIDENCE"] == pytest.approx(probabilities[results["CLASS"]])
    assert probabilities == pytest.approx({name: classified.count(name) / len(classified) for name in CLASSES})
    assert sum(probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    with open_raster(tmp_path / "out" / "classes.tif") as classes:
        assert classes.shape == (31, 31) and classes.crs.to_epsg() == 32618 and classes.nodata == 255
        assert int((classes.read(1) == 255).sum()) == len(nodata)
    log = "\n".join(feedback.infos)
    assert "Mode: grid of tiles" in log and "on cpu" in log and f"{31 * 31} tiles of 64 px" in log
    counts = {name: sum(f["class"] == name for f in features) for name in CLASSES}
    assert "Tiles per class: " + ", ".join(f"{name} {count}" for name, count in counts.items()) in log
    assert feedback.warnings == []


def test_the_loaded_layer_is_categorized_in_the_cards_colours(plugin, saved_classifier, tmp_path):
    import processing

    from satvision.models.card import words_of

    raster = synthetic_raster(tmp_path / "half.tif", 96, 32, nodata_from_column=40)  # tiles at 0, 32 with data; 64 empty
    output = tmp_path / "tiles.gpkg"
    project = QgsProject.instance()
    processing.runAndLoadResults("satvision:classifytiles", {
        "INPUT": str(raster), "MODEL": str(saved_classifier), "TILE_SIZE": 32, "OUTPUT": str(output),
    })
    try:
        (layer,) = [layer for layer in project.mapLayers().values() if layer.source().startswith(str(output))]
        renderer = layer.renderer()
        assert renderer.type() == "categorizedSymbol" and renderer.classAttribute() == "class"
        categories = renderer.categories()
        assert [(c.value(), c.label(), c.symbol().color().name()) for c in categories[:-1]] == [
            (name, words_of(name), colour) for name, colour in CLASSES.items()  # ids as values, words in the legend
        ]
        assert categories[-1].label() == "No data (skipped)"
        context = QgsRenderContext()
        renderer.startRender(context, layer.fields())
        symbols = {feature["status"]: renderer.symbolForFeature(feature, context) for feature in layer.getFeatures()}
        renderer.stopRender(context)
        assert set(symbols) == {"classified", "nodata"}
        hollow = symbols["nodata"].symbolLayer(0)
        assert hollow.brushStyle() == Qt.BrushStyle.NoBrush and hollow.strokeColor().name() == "#808080"
        assert symbols["classified"].symbolLayer(0).brushStyle() == Qt.BrushStyle.SolidPattern
    finally:
        project.removeAllMapLayers()


def test_whole_mode_describes_the_raster_in_the_outputs(plugin, scene, saved_classifier, tmp_path):
    chip = tmp_path / "chip.tif"
    with open_raster(scene) as source:
        grid = Grid(source.crs, source.window_transform(((900, 920), (900, 920))), 20, 20)
        values = source.read(window=((900, 920), (900, 920)))
    with write_geotiff(chip, grid, 4, "uint16", nodata=0, band_names=BANDS) as writer:
        writer.write(values)
    results = run({"INPUT": str(chip), "MODEL": str(saved_classifier), "MODE": 1, "OUTPUT": str(tmp_path / "whole.gpkg")})
    _, _, (feature,) = read_layer(tmp_path / "whole.gpkg")
    probabilities = json.loads(results["PROBABILITIES"])
    assert results["TILE_COUNT"] == 1 and results["SKIPPED_TILES"] == 0
    assert results["CLASS"] == feature["class"] == max(probabilities, key=probabilities.get)
    assert results["CONFIDENCE"] == pytest.approx(max(probabilities.values()))
    assert sum(probabilities.values()) == pytest.approx(1.0, abs=1e-5)


def test_a_tile_larger_than_the_raster_gives_one_padded_tile_and_a_warning(plugin, saved_classifier, tmp_path):
    raster = synthetic_raster(tmp_path / "small.tif", 40, 30)
    feedback = RecordingFeedback()
    results = run({"INPUT": str(raster), "MODEL": str(saved_classifier), "TILE_SIZE": 64,
                   "OUTPUT": str(tmp_path / "tiles.gpkg")}, feedback)
    assert results["TILE_COUNT"] == 1 and results["SKIPPED_TILES"] == 0 and results["CLASS"] in CLASSES
    assert len(feedback.warnings) == 1
    assert "(40 × 30 px at the model's GSD) is smaller than a tile (64 px)" in feedback.warnings[0]


def test_a_segmentation_model_is_refused(plugin, scene, saved_model, tmp_path):
    with pytest.raises(QgsProcessingException, match="is a segmentation model .* needs a classification model"):
        run({"INPUT": str(scene), "MODEL": str(saved_model), "OUTPUT": str(tmp_path / "tiles.gpkg")})
    assert not (tmp_path / "tiles.gpkg").exists()


def test_a_wrong_band_mapping_and_an_empty_extent_are_refused(plugin, scene, saved_classifier, tmp_path):
    with pytest.raises(QgsProcessingException, match="lists 3 band\\(s\\) but the model needs 4 \\(B2, B3, B4, B8\\)"):
        run({"INPUT": str(scene), "MODEL": str(saved_classifier), "BANDS": [1, 2, 3], "OUTPUT": str(tmp_path / "a.gpkg")})
    with pytest.raises(QgsProcessingException, match="extent is empty"):
        run({"INPUT": str(scene), "MODEL": str(saved_classifier), "EXTENT": "436730,436730,4167460,4173860 [EPSG:32618]",
             "OUTPUT": str(tmp_path / "b.gpkg")})
    assert sorted(path.name for path in tmp_path.iterdir()) == ["tiny-classifier.safetensors"]


def test_an_empty_model_uses_the_bundled_default_or_says_it_is_missing(plugin, saved_classifier, tmp_path):
    raster = synthetic_raster(tmp_path / "r.tif", 64, 64)
    parameters = {"INPUT": str(raster), "MODE": 1, "OUTPUT": str(tmp_path / "tiles.gpkg")}
    default = BUNDLED_MODELS_DIR / "landcover-default.safetensors"
    if default.is_file():
        assert run(parameters)["TILE_COUNT"] == 1
    else:
        with pytest.raises(QgsProcessingException, match="default classification model .*landcover-default.safetensors is missing"):
            run(parameters)


def test_cancellation_leaves_no_files(plugin, saved_classifier, tmp_path):
    raster = synthetic_raster(tmp_path / "r.tif", 256, 256)
    folder = tmp_path / "outputs"
    folder.mkdir()
    feedback = RecordingFeedback(cancel_after=1.0)
    with pytest.raises(QgsProcessingException, match="Cancelled"):
        run({"INPUT": str(raster), "MODEL": str(saved_classifier), "BATCH_SIZE": 8, "OUTPUT": str(folder / "tiles.gpkg"),
             "OUTPUT_CLASS_RASTER": str(folder / "classes.tif")}, feedback)
    assert feedback.isCanceled() and list(folder.iterdir()) == []


def test_classifytiles_through_qgis_process(qgis_process, scene, saved_classifier, tmp_path):
    answer = qgis_process_json(qgis_process(
        "run", "satvision:classifytiles", "--json", "--",
        f"INPUT={scene}", f"MODEL={saved_classifier}", "TILE_SIZE=64", f"EXTENT={SCENE_EXTENT}",
        f"OUTPUT={tmp_path / 'tiles.gpkg'}", f"OUTPUT_CLASS_RASTER={tmp_path / 'classes.tif'}",
    ))
    results = answer["results"]
    epsg, fields, features = read_layer(tmp_path / "tiles.gpkg")
    assert results["OUTPUT"] == str(tmp_path / "tiles.gpkg") and results["TILE_COUNT"] == len(features) == 100
    assert epsg == "32618" and FIELDS <= fields
    assert results["SKIPPED_TILES"] == sum(f["status"] == "nodata" for f in features)
    assert results["CLASS"] in CLASSES and 0.25 <= results["CONFIDENCE"] <= 1.0
    assert sum(json.loads(results["PROBABILITIES"]).values()) == pytest.approx(1.0, abs=1e-5)
    with open_raster(tmp_path / "classes.tif") as classes:
        assert classes.shape == (10, 10) and classes.transform == from_origin(436730, 4173860, 640, 640)


def test_test_time_augmentation_makes_the_class_independent_of_the_tile_orientation(plugin, scene, saved_classifier, tmp_path):
    with open_raster(scene) as source:
        grid = Grid(source.crs, source.window_transform(((900, 916), (900, 916))), 16, 16)
        values = source.read(window=((900, 916), (900, 916)))
    chips = {}
    for name, data in (("upright", values), ("turned", np.ascontiguousarray(np.rot90(values, 1, axes=(1, 2))))):
        chips[name] = tmp_path / f"{name}.tif"
        with write_geotiff(chips[name], grid, 4, "uint16", nodata=0, band_names=BANDS) as writer:
            writer.write(data)

    def probabilities(chip: Path, augmentation: int, feedback=None) -> dict:
        results = run({"INPUT": str(chip), "MODEL": str(saved_classifier), "MODE": 1, "TEST_TIME_AUGMENTATION": augmentation,
                       "OUTPUT": str(tmp_path / f"{chip.stem}-{augmentation}.gpkg")}, feedback)
        return json.loads(results["PROBABILITIES"])

    feedback = RecordingFeedback()
    averaged = probabilities(chips["upright"], 3, feedback)  # 3: flips and 90° rotations
    assert "test-time augmentation d4 (8 passes)" in "\n".join(feedback.infos)
    assert probabilities(chips["turned"], 3) == pytest.approx(averaged, abs=1e-5)
    single = probabilities(chips["upright"], 1)  # 1: none
    assert single != pytest.approx(probabilities(chips["turned"], 1), abs=1e-5)  # one pass depends on orientation
