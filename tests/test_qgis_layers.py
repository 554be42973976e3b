"""What a QGIS user sees after a run: the outputs loaded styled, in order, with legends in words.

The algorithms run through ``processing.runAndLoadResults``, QGIS's own path from the dialog:
the outputs are loaded into the project by Processing's ``handleAlgorithmResults``, which calls
our post-processors. Real tiny models, the real scene, real QGIS.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from qgis.core import QgsLayerTreeLayer, QgsProject

from satvision.models.architectures import build_network
from satvision.models.modelfile import save_model

#: A small window of the scene (100 × 100 px at 10 m).
EXTENT = "436730,437730,4164460,4165460 [EPSG:32618]"


@pytest.fixture
def project():
    project = QgsProject.instance()
    project.clear()
    yield project
    project.clear()


def run_and_load(algorithm: str, parameters: dict) -> dict:
    import processing

    results = processing.runAndLoadResults(algorithm, parameters)
    assert results, f"{algorithm} failed"
    return results


def layer_from(project: QgsProject, path: Path):
    """The project layer whose source is ``path`` (GeoPackage sources carry a |layername=…)."""
    matches = [layer for layer in project.mapLayers().values() if layer.source().split("|")[0] == str(path)]
    assert len(matches) == 1, [layer.source() for layer in project.mapLayers().values()]
    return matches[0]


def tree_order(project: QgsProject, layers) -> list[str]:
    """The ids of ``layers`` in layer-tree order, top first."""
    ids = {layer.id() for layer in layers}
    return [node.layerId() for node in project.layerTreeRoot().findLayers() if node.layerId() in ids]


def test_segmentwater_probability_and_mask_are_styled_and_lie_under_the_polygons(plugin, project, scene, saved_model, tmp_path):
    # Processing loads outputs in the order of their paths, each on top of the previous ones: named
    # like this, unstyled loading would put the probability raster on top, hiding the polygons.
    polygons, mask, probability = tmp_path / "1-water.gpkg", tmp_path / "2-mask.tif", tmp_path / "3-probability.tif"
    run_and_load("satvision:segmentwater", {
        "INPUT": str(scene), "MODEL": str(saved_model), "EXTENT": EXTENT, "OUTPUT": str(polygons),
        "PROBABILITY": str(probability), "MASK": str(mask), "MIN_AREA": 0, "SIMPLIFY": 0,
    })
    water, mask_layer, probability_layer = (layer_from(project, path) for path in (polygons, mask, probability))

    assert tree_order(project, [water, mask_layer, probability_layer]) == [water.id(), mask_layer.id(), probability_layer.id()]

    renderer = probability_layer.renderer()
    assert renderer.type() == "singlebandpseudocolor" and renderer.band() == 1
    assert 0 < renderer.opacity() < 1
    ramp = renderer.shader().rasterShaderFunction().colorRampItemList()
    assert [item.value for item in ramp][0] == 0 and ramp[-1].value == 1
    assert ramp[0].color.alpha() == 0 and ramp[-1].color.alpha() == 255
    assert ramp[-1].color.blue() > ramp[-1].color.red()  # blue water
    assert probability_layer.dataProvider().sourceHasNoDataValue(1)  # nodata: not drawn

    renderer = mask_layer.renderer()
    assert renderer.type() == "paletted" and 0 < renderer.opacity() < 1
    colours = {item.value: item.color for item in renderer.classes()}
    assert set(colours) == {0, 1}
    assert colours[0].alpha() == 0 and colours[1].alpha() == 255 and colours[1].blue() > colours[1].red()

    assert water.renderer().type() == "singleSymbol"
    area = water.fields().indexFromName("area_m2")
    setup = water.editorWidgetSetup(area)
    assert setup.type() == "Range" and setup.config()["Precision"] == 1


def test_segmentwater_polygons_stay_on_top_whatever_the_loading_order(plugin, project, scene, saved_model, tmp_path):
    polygons, probability = tmp_path / "z-water.gpkg", tmp_path / "a-probability.tif"
    run_and_load("satvision:segmentwater", {
        "INPUT": str(scene), "MODEL": str(saved_model), "EXTENT": EXTENT, "OUTPUT": str(polygons),
        "PROBABILITY": str(probability), "MIN_AREA": 0, "SIMPLIFY": 0,
    })
    water, probability_layer = layer_from(project, polygons), layer_from(project, probability)
    assert tree_order(project, [water, probability_layer]) == [water.id(), probability_layer.id()]
    assert all(isinstance(node, QgsLayerTreeLayer) for node in project.layerTreeRoot().children())


@pytest.fixture
def labelled_classifier(tmp_path) -> Path:
    """The tiny classifier whose card labels SeaLake explicitly; the other classes fall back to words."""
    import torch
    from conftest import tiny_classifier_card

    card = tiny_classifier_card()
    classes = [{"index": item.index, "name": item.name, "colour": item.colour} for item in card.classes]
    for item in classes:
        if item["name"] == "SeaLake":
            item["label"] = "Sea or lake"
    card = tiny_classifier_card(classes=classes)
    torch.manual_seed(0)
    return save_model(tmp_path / "labelled.safetensors", build_network(card).state_dict(), card)


def test_classifytiles_legend_in_words_class_raster_styled_under_the_tiles(plugin, project, scene, labelled_classifier, tmp_path):
    tiles, classes = tmp_path / "1-tiles.gpkg", tmp_path / "2-classes.tif"
    run_and_load("satvision:classifytiles", {
        "INPUT": str(scene), "MODEL": str(labelled_classifier), "EXTENT": EXTENT, "OUTPUT": str(tiles),
        "OUTPUT_CLASS_RASTER": str(classes), "BATCH_SIZE": 16, "MIN_VALID_SHARE": 0,
    })
    tiles_layer, class_layer = layer_from(project, tiles), layer_from(project, classes)
    words = {"AnnualCrop": "Annual crop", "Forest": "Forest", "River": "River", "SeaLake": "Sea or lake"}

    categories = {category.value(): category.label() for category in tiles_layer.renderer().categories()}
    assert tiles_layer.renderer().classAttribute() == "class"
    assert {value: label for value, label in categories.items() if value} == words  # ids as values, words as labels

    values = {(feature["class"], feature["class_label"]) for feature in tiles_layer.getFeatures() if feature["class"]}
    assert values and all(words[name] == label for name, label in values)

    renderer = class_layer.renderer()
    assert renderer.type() == "paletted" and 0 < renderer.opacity() < 1
    assert [(item.value, item.label) for item in renderer.classes()] == list(enumerate(words.values()))

    assert tree_order(project, [tiles_layer, class_layer]) == [tiles_layer.id(), class_layer.id()]
    confidence = tiles_layer.editorWidgetSetup(tiles_layer.fields().indexFromName("confidence"))
    assert confidence.config()["Precision"] == 4
