"""What a QGIS user reads and meets (issue 14 §4 A): batch results, feedback while the model
loads, tooltips and help, names of choices and outputs, the classifier's summary outputs, the
plugin metadata. Real QGIS (pytest-qgis), real tiny models, real GDAL files."""

from __future__ import annotations

import codecs
import configparser
import json
import re
from pathlib import Path

import numpy as np
import pytest
import rasterio
from osgeo import ogr
from qgis.core import (
    QgsApplication,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingOutputLayerDefinition,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterVectorDestination,
    QgsProject,
)
from rasterio.transform import from_origin

from satvision.core.raster import Grid, write_geotiff

ROOT = Path(__file__).resolve().parent.parent
BANDS = ["B2", "B3", "B4", "B8"]
SMALL_EXTENT = "436730,437730,4164460,4165460 [EPSG:32618]"  # 100 × 100 px of the real scene


class RecordingFeedback(QgsProcessingFeedback):
    """Every info line, warning, error and progress text, in order, as (kind, text)."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[tuple[str, str]] = []

    def pushInfo(self, info):  # noqa: N802 - QGIS API
        self.events.append(("info", info))

    def pushWarning(self, warning):  # noqa: N802 - QGIS API
        self.events.append(("warning", warning))

    def reportError(self, error, fatalError=False):  # noqa: N802,N803 - QGIS API
        self.events.append(("error", error))

    def setProgressText(self, text):  # noqa: N802 - QGIS API
        self.events.append(("progress text", text))

    def texts(self, kind: str) -> list[str]:
        return [text for event, text in self.events if event == kind]


def algorithm(algorithm_id: str):
    return QgsApplication.processingRegistry().createAlgorithmById(f"satvision:{algorithm_id}")


def write_raster(path: Path, values: np.ndarray) -> Path:
    """A 4-band UINT16 GeoTIFF in UTM 18N at 10 m with the band descriptions B2, B3, B4, B8."""
    grid = Grid(rasterio.crs.CRS.from_epsg(32618), from_origin(435730, 4179460, 10, 10), values.shape[2], values.shape[1])
    with write_geotiff(path, grid, 4, "uint16", nodata=0, band_names=BANDS) as writer:
        writer.write(values)
    return path


def read_features(path: Path) -> list[dict]:
    dataset = ogr.Open(str(path))
    layer = dataset.GetLayer(0)
    features = [{"row": f.GetField("row"), "column": f.GetField("column"), "class": f.GetField("class"),
                 "status": f.GetField("status")} for f in layer]
    del layer, dataset  # closed before QGIS exits
    return features


# 1. Batch mode: optional outputs left empty must not be "not correctly generated" -------------------------


def batch_row(algorithm, values: dict, project: QgsProject) -> dict:
    """The parameters of one batch row as processing's BatchPanel.parametersForRow builds them:
    every layer destination, an empty one too, as an output definition bound to the project."""
    parameters = dict(values)
    for definition in algorithm.destinationParameterDefinitions():
        text = values.get(definition.name(), "")
        if isinstance(definition, (QgsProcessingParameterRasterDestination, QgsProcessingParameterVectorDestination)):
            parameters[definition.name()] = QgsProcessingOutputLayerDefinition(text, project)
        else:
            parameters[definition.name()] = text
    return parameters


@pytest.fixture
def generation_model(tmp_path_factory) -> Path:
    from diffusion_helpers import make_released_checkpoint

    from satvision.models.diffusionsat_convert import convert_diffusionsat

    released = make_released_checkpoint(tmp_path_factory.mktemp("release"))
    return convert_diffusionsat(released, tmp_path_factory.mktemp("models") / "tiny-diffusionsat.safetensors")


@pytest.fixture
def batch_inputs(request, scene, saved_model, saved_classifier, tmp_path) -> tuple[str, dict]:
    """(algorithm id, the row's values with every optional output left empty)."""
    algorithm_id = request.param
    if algorithm_id == "segmentwater":
        values = {"INPUT": str(scene), "MODEL": str(saved_model), "EXTENT": SMALL_EXTENT, "OUTPUT": str(tmp_path / "water.gpkg")}
    elif algorithm_id == "classifytiles":
        values = {"INPUT": str(scene), "MODEL": str(saved_classifier), "EXTENT": SMALL_EXTENT, "OUTPUT": str(tmp_path / "tiles.gpkg")}
    elif algorithm_id == "generateimagery":
        values = {"POINT": "-75.9,37.25 [EPSG:4326]", "MODEL": str(request.getfixturevalue("generation_model")),
                  "STEPS": 2, "OUTPUT": str(tmp_path / "synthetic.tif")}
    else:
        values = {}
    return algorithm_id, values


@pytest.mark.parametrize("batch_inputs", ["diagnose", "segmentwater", "classifytiles", "generateimagery"], indirect=True)
def test_a_batch_row_with_optional_outputs_left_empty_loads_without_a_missing_layer(plugin, batch_inputs):
    from processing.gui.Postprocessing import handleAlgorithmResults

    algorithm_id, values = batch_inputs
    alg = algorithm(algorithm_id)
    project = QgsProject.instance()
    parameters = batch_row(alg, values, project)
    context = QgsProcessingContext()
    context.setProject(project)
    feedback = RecordingFeedback()
    try:
        results, ok = alg.run(parameters, context, feedback)
        assert ok, feedback.events
        destinations = {definition.name() for definition in alg.destinationParameterDefinitions()}
        # what was asked for is there; what was left empty is not reported at all (not '' nor None)
        assert {name for name in destinations if name in results} == {name for name in destinations if values.get(name)}
        assert all(value not in ("", None) for value in results.values())
        # the very condition of the batch dialog (processing/gui/Postprocessing.py)
        assert "" not in context.layersToLoadOnCompletion()
        assert handleAlgorithmResults(alg, context, feedback, False, parameters)
        assert not [text for text in feedback.texts("error") if "not correctly generated" in text]
        loaded = {Path(layer.source().split("|")[0]) for layer in project.mapLayers().values()}
        assert {Path(values[name]) for name in destinations if values.get(name)} <= loaded
    finally:
        project.removeAllMapLayers()


# 2. Feedback while PyTorch and the model load -----------------------------------------------------------


@pytest.mark.parametrize("algorithm_id", ["segmentwater", "classifytiles"])
def test_the_log_says_the_model_is_loading_before_the_model_line(plugin, scene, saved_model, saved_classifier, tmp_path, algorithm_id):
    import processing

    model = saved_model if algorithm_id == "segmentwater" else saved_classifier
    feedback = RecordingFeedback()
    processing.run(f"satvision:{algorithm_id}", {
        "INPUT": str(scene), "MODEL": str(model), "EXTENT": SMALL_EXTENT, "OUTPUT": str(tmp_path / "out.gpkg"),
    }, feedback=feedback)
    events = feedback.events
    loading = events.index(("info", "Loading PyTorch and the model… (the first run can take ~20 s)"))
    # the dialog's progress text changes at once, before anything slow
    assert events.index(("progress text", "Loading PyTorch and the model…")) < loading
    loaded = next(i for i, (kind, text) in enumerate(events) if kind == "info" and re.fullmatch(r"Model loaded in \d+\.\d s", text))
    model_line = next(i for i, (kind, text) in enumerate(events) if kind == "info" and text.startswith("Model tiny-"))
    assert loading < loaded < model_line


# 3. Tooltips and help ----------------------------------------------------------------------------------


def test_every_algorithm_has_a_short_description_and_every_parameter_help(plugin):
    assert hasattr(QgsProcessingParameterDefinition, "setHelp")  # QGIS 3.16+, as here (3.22)
    for alg in QgsApplication.processingRegistry().providerById("satvision").algorithms():
        assert alg.shortDescription().strip(), alg.id()
        missing = [p.name() for p in alg.parameterDefinitions() if not p.help().strip()]
        assert missing == [], f"{alg.id()}: parameters without help: {missing}"


# 4. Names users read -------------------------------------------------------------------------------------


def test_descriptions_are_unique_within_each_algorithm(plugin):
    for alg in QgsApplication.processingRegistry().providerById("satvision").algorithms():
        parameters = [p.description() for p in alg.parameterDefinitions()]
        outputs = [o.description() for o in alg.outputDefinitions()]
        # a layer destination's output shares its parameter's description by design; other outputs may not
        destinations = {p.name() for p in alg.destinationParameterDefinitions()}
        own = [o.description() for o in alg.outputDefinitions() if o.name() not in destinations]
        assert len(set(parameters)) == len(parameters), (alg.id(), parameters)
        assert len(set(outputs)) == len(outputs), (alg.id(), outputs)
        assert not set(own) & set(parameters), (alg.id(), set(own) & set(parameters))


def device_options(algorithm_id: str) -> list[str]:
    alg = algorithm(algorithm_id)
    return alg.parameterDefinition("DEVICE").options()


@pytest.mark.parametrize("algorithm_id", ["segmentwater", "classifytiles", "generateimagery"])
def test_the_device_choices_offer_mps_only_on_apple_silicon_at_stable_indexes(plugin, monkeypatch, algorithm_id):
    import platform

    from satvision.algorithms.device_choices import device_value

    monkeypatch.setattr(platform, "system", lambda: "Linux")
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    elsewhere = device_options(algorithm_id)
    monkeypatch.setattr(platform, "system", lambda: "Darwin")
    monkeypatch.setattr(platform, "machine", lambda: "arm64")
    apple = device_options(algorithm_id)
    assert not any("mps" in option.lower() for option in elsewhere)
    # the same choices at the same indexes, MPS added last (only "Automatic" says what it tries)
    assert apple[0].startswith("Automatic") and elsewhere[0].startswith("Automatic")
    assert apple[1 : len(elsewhere)] == elsewhere[1:] and len(apple) == len(elsewhere) + 1 and "MPS" in apple[-1]
    assert [device_value(index) for index in range(len(apple))] == ["auto", "cpu", "cuda", "mps"]
    assert isinstance(algorithm(algorithm_id).parameterDefinition("DEVICE"), QgsProcessingParameterEnum)


def test_a_chosen_device_reaches_the_model(plugin, scene, saved_model, tmp_path):
    import processing

    cpu = device_options("segmentwater").index("CPU")
    results = processing.run("satvision:segmentwater", {
        "INPUT": str(scene), "MODEL": str(saved_model), "EXTENT": SMALL_EXTENT, "DEVICE": cpu,
        "OUTPUT": str(tmp_path / "water.gpkg"),
    })
    assert results["DEVICE_USED"].startswith("cpu")


# 5. Classify tiles: the grid's summary is the majority class ----------------------------------------------


def test_grid_mode_reports_the_majority_class_not_the_first_tile(plugin, saved_classifier, tmp_path):
    """A first tile of one class followed by two tiles of another: CLASS is the other one."""
    import processing

    rng = np.random.default_rng(0)
    patterns = [rng.integers(200 + 300 * k, 600 + 600 * k, size=(4, 16, 16), dtype=np.uint16) for k in range(8)]
    probe = write_raster(tmp_path / "probe.tif", np.concatenate(patterns, axis=2))  # 8 tiles of 16 px in a row
    processing.run("satvision:classifytiles", {"INPUT": str(probe), "MODEL": str(saved_classifier), "TILE_SIZE": 16,
                                              "OUTPUT": str(tmp_path / "probe.gpkg")})
    classes = {f["column"]: f["class"] for f in read_features(tmp_path / "probe.gpkg")}
    first = next(k for k in range(8) if any(classes[j] != classes[k] for j in range(8)))
    other = next(j for j in range(8) if classes[j] != classes[first])

    raster = write_raster(tmp_path / "three.tif", np.concatenate([patterns[first], patterns[other], patterns[other]], axis=2))
    results = processing.run("satvision:classifytiles", {"INPUT": str(raster), "MODEL": str(saved_classifier), "TILE_SIZE": 16,
                                                         "OUTPUT": str(tmp_path / "three.gpkg")})
    features = sorted(read_features(tmp_path / "three.gpkg"), key=lambda f: f["column"])
    written = [f["class"] for f in features if f["status"] == "classified"]
    assert written[0] == classes[first] != written[1] == written[2] == classes[other]
    majority = max(set(written), key=written.count)
    assert results["CLASS"] == majority
    assert results["CONFIDENCE"] == pytest.approx(written.count(majority) / len(written))
    shares = json.loads(results["PROBABILITIES"])
    assert shares == pytest.approx({name: written.count(name) / len(written) for name in shares})
    assert algorithm("classifytiles").outputDefinition("CLASS").description() == "Majority class (grid) / class (whole raster)"


# 6. Plugin metadata --------------------------------------------------------------------------------------


def metadata() -> configparser.SectionProxy:
    """metadata.txt read as QGIS's plugin manager reads it (pyplugin_installer: ConfigParser.read_file)."""
    parser = configparser.ConfigParser()
    with codecs.open(str(ROOT / "metadata.txt"), "r", "utf8") as file:
        parser.read_file(file)
    return parser["general"]


def test_the_metadata_claims_no_address_that_is_not_the_projects():
    """Until the project has public addresses, every address is on the reserved .invalid domain,
    which nobody can own (the old github.com/satvision links could lead to someone else's site)."""
    general = metadata()
    assert re.fullmatch(r"[a-z0-9.-]+@[a-z0-9.-]+\.invalid", general["email"]), general["email"]
    for key in ("homepage", "tracker", "repository"):
        if key in general:
            assert re.fullmatch(r"https://[a-z0-9.-]+\.invalid(/\S*)?", general[key]), (key, general[key])


def test_experimental_is_a_decision_with_its_reason_in_the_metadata():
    text = (ROOT / "metadata.txt").read_text(encoding="utf-8").splitlines()
    line = next(i for i, entry in enumerate(text) if entry.startswith("experimental="))
    assert metadata()["experimental"] in ("True", "False")
    assert text[line - 1].startswith("#") and "xperimental" in " ".join(t for t in text[:line] if t.startswith("#"))
