"""Choosing a model: the installed models listed in the dialog, bare file names, the wrong-task hint."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from qgis.core import QgsProcessingException
from tests_helpers import qgis_process_json

from satvision.core.errors import SatVisionError, TaskMismatchError
from satvision.models.catalog import BUNDLED_MODELS_DIR, ENVIRONMENT_VARIABLE, model_choices, resolve_model

EXTENT = "436730,437370,4164460,4165100 [EPSG:32618]"
#: Qt objects the dialog test keeps until the session ends.
_ALIVE: list = []


@pytest.fixture
def models_folder(tmp_path, saved_model, saved_classifier, monkeypatch) -> Path:
    """A user models folder (through the environment variable) with a segmenter, a classifier and a broken file."""
    folder = tmp_path / "my-models"
    folder.mkdir()
    shutil.copy(saved_model, folder / "lake-unet.safetensors")
    shutil.copy(saved_classifier, folder / "crops-vit.safetensors")
    (folder / "broken.safetensors").write_bytes(b"not a model")
    monkeypatch.setenv(ENVIRONMENT_VARIABLE, str(folder))
    return folder


def test_choices_are_the_valid_models_of_the_task_bundled_first(models_folder):
    segmentation = model_choices("segmentation")
    assert [Path(path).name for _, path in segmentation] == ["water-default-6band.safetensors", "water-default.safetensors",
                                                                "lake-unet.safetensors"]
    label, path = segmentation[2]
    assert label == "tiny-water-unet — lake-unet.safetensors (user)" and path == str(models_folder / "lake-unet.safetensors")
    assert [Path(path).name for _, path in model_choices("classification")] == [
        "landcover-default.safetensors", "crops-vit.safetensors"]
    assert model_choices("generation") == []


def test_a_bare_file_name_or_name_resolves_in_the_model_folders(models_folder):
    assert resolve_model("lake-unet.safetensors", "segmentation") == models_folder / "lake-unet.safetensors"
    assert resolve_model("lake-unet", "segmentation") == models_folder / "lake-unet.safetensors"  # the file's stem
    assert resolve_model("tiny-water-unet", "segmentation") == models_folder / "lake-unet.safetensors"  # the card's name
    assert resolve_model("water-default.safetensors", "segmentation") == BUNDLED_MODELS_DIR / "water-default.safetensors"
    with pytest.raises(SatVisionError, match=r"No segmentation model named 'absent'.*tiny-water-unet \(lake-unet.safetensors\)"
                                             r".*Model parameter's list in QGIS"):
        resolve_model("absent", "segmentation")


def test_a_model_of_another_task_is_refused_with_a_hint_for_the_qgis_user(models_folder):
    with pytest.raises(TaskMismatchError) as error:
        resolve_model("crops-vit.safetensors", "segmentation")
    message = str(error.value)
    assert "crops-vit.safetensors is a classification model (tiny-landcover-vit), but this tool needs a segmentation model" in message
    assert ("Choose a segmentation model in the Model parameter (installed segmentation models: satvision-water-6band "
            "(water-default-6band.safetensors), satvision-water-4band (water-default.safetensors), "
            "tiny-water-unet (lake-unet.safetensors))") in message


def test_segmentwater_runs_a_bare_file_name_and_explains_a_wrong_model(plugin, models_folder, scene, tmp_path):
    import processing

    parameters = {"INPUT": str(scene), "EXTENT": EXTENT, "OUTPUT": str(tmp_path / "water.gpkg")}
    results = processing.run("satvision:segmentwater", {**parameters, "MODEL": "lake-unet.safetensors"})
    assert results["TILE_COUNT"] >= 1
    with pytest.raises(QgsProcessingException, match=r"Choose a segmentation model in the Model parameter \(installed"):
        processing.run("satvision:segmentwater", {**parameters, "MODEL": "crops-vit.safetensors"})


@pytest.mark.parametrize("algorithm, task", [
    ("satvision:segmentwater", "segmentation"), ("satvision:classifytiles", "classification"),
    ("satvision:generateimagery", "generation"),
])
def test_the_dialog_lists_the_installed_models(plugin, qgis_iface, monkeypatch, models_folder, algorithm, task):
    from processing.gui.AlgorithmDialog import AlgorithmDialog
    from qgis.core import QgsApplication
    from qgis.gui import QgsBrowserGuiModel

    from satvision.algorithms.model_widget import DEFAULT_LABEL, ModelWidgetWrapper

    if not _ALIVE:  # one browser model for the session: dialogs keep pointing at it
        _ALIVE.append(QgsBrowserGuiModel())
    browser = _ALIVE[0]  # the test iface has none; the real dialog asks for it
    monkeypatch.setattr(qgis_iface, "browserModel", lambda: browser, raising=False)
    dialog = AlgorithmDialog(QgsApplication.processingRegistry().createAlgorithmById(algorithm))
    try:
        wrapper = dialog.mainWidget().wrappers["MODEL"]
        assert isinstance(wrapper, ModelWidgetWrapper)
        combo = wrapper.combo
        items = [(combo.itemText(index), combo.itemData(index)) for index in range(combo.count())]
        assert items[0] == (DEFAULT_LABEL, "") and items[1:] == model_choices(task)
        assert wrapper.value() is None  # the default model
        if len(items) > 1:
            wrapper.setValue(items[-1][1])
            assert combo.currentText() == items[-1][0] and wrapper.value() == items[-1][1]
        wrapper.setValue("some-model-name")  # typed names and paths are kept as typed
        assert wrapper.value() == "some-model-name"
        assert wrapper.parameterValue() == "some-model-name"  # what the dialog passes to the algorithm
    finally:
        dialog.close()
        _ALIVE.append(dialog)  # deleting Processing's Python dialog during the session crashes QGIS at random


def test_qgis_process_accepts_a_bare_file_name(qgis_process, models_folder, scene, tmp_path):
    output = tmp_path / "tiles.gpkg"
    completed = qgis_process(
        "run", "satvision:classifytiles", "--json", f"--INPUT={scene}", "--MODEL=crops-vit.safetensors",
        f"--EXTENT={EXTENT}", f"--OUTPUT={output}", env={ENVIRONMENT_VARIABLE: str(models_folder)},
    )
    results = qgis_process_json(completed)["results"]
    assert results["TILE_COUNT"] == 16 and output.is_file()
