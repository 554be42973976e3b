"""Class labels in words (model card, fallback, tile layer) and the field types of the vector outputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from osgeo import ogr
from rasterio.crs import CRS
from rasterio.transform import from_origin

from satvision.core.errors import ModelCardError
from satvision.core.raster import Grid, write_geotiff
from satvision.core.vectorize import vectorize_mask
from satvision.inference.classify_engine import ClassificationSettings
from satvision.inference.classify_job import classify_tiles
from satvision.models.card import load_card_json, words_of
from satvision.models.catalog import BUNDLED_MODELS_DIR
from satvision.models.modelfile import read_card

BOUNDS = (436730.0, 4164460.0, 437370.0, 4165100.0)  # 64 × 64 px of the scene


@pytest.mark.parametrize("name, words", [
    ("HerbaceousVegetation", "Herbaceous vegetation"), ("AnnualCrop", "Annual crop"), ("SeaLake", "Sea lake"),
    ("water", "Water"), ("no_data", "No data"), ("bare-soil", "Bare soil"), ("NDVIHigh", "NDVI high"), ("class2", "Class 2"),
])
def test_class_ids_in_words(name, words):
    assert words_of(name) == words


def test_card_labels_round_trip_and_fall_back_to_words():
    from conftest import tiny_classifier_card

    card = tiny_classifier_card()
    data = card.to_dict()
    data["classes"][3]["label"] = "Sea or lake"
    labelled = load_card_json(json.dumps(data))
    assert load_card_json(labelled.to_json()) == labelled
    assert labelled.class_names() == ["AnnualCrop", "Forest", "River", "SeaLake"]  # the ids are unchanged
    assert labelled.class_labels() == ["Annual crop", "Forest", "River", "Sea or lake"]
    # a card without labels writes none: older SatVision versions (strict about fields) still read it
    assert all("label" not in item for item in json.loads(card.to_json())["classes"])
    data["classes"][0]["label"] = 7
    with pytest.raises(ModelCardError, match="label must be text"):
        load_card_json(json.dumps(data))


def test_the_bundled_land_cover_card_labels_its_classes():
    card = read_card(BUNDLED_MODELS_DIR / "landcover-default.safetensors")
    labels = dict(zip(card.class_names(), card.class_labels()))
    assert labels["SeaLake"] == "Sea or lake" and labels["HerbaceousVegetation"] == "Herbaceous vegetation"
    assert labels["AnnualCrop"] == "Annual crop"


def field_types(path: Path) -> dict[str, tuple[str, int, int]]:
    """Type name, width and precision of every field, as written (the file is closed after)."""
    dataset = ogr.Open(str(path))
    definition = dataset.GetLayer(0).GetLayerDefn()
    fields = {}
    for index in range(definition.GetFieldCount()):
        field = definition.GetFieldDefn(index)
        fields[field.GetName()] = (field.GetTypeName(), field.GetWidth(), field.GetPrecision())
    del definition, dataset
    return fields


def test_tile_layer_has_class_labels_integer_positions_and_four_decimal_probabilities(scene, saved_classifier, tmp_path):
    output = tmp_path / "tiles.fgb"  # FlatGeobuf keeps field widths and precisions
    result = classify_tiles(scene, output, model=str(saved_classifier), settings=ClassificationSettings(bounds=BOUNDS))
    assert result.run.tile_count == 16
    fields = field_types(output)
    for name in ("column", "row", "class_index"):
        assert fields[name][0] == "Integer", name
    assert fields["class"][0] == fields["class_label"][0] == "String"
    reals = [name for name, (kind, _, _) in fields.items() if kind == "Real"]
    assert set(reals) >= {"confidence", "valid_share", "prob_2", "p_annualcrop", "p_sealake"}
    assert all(fields[name][1:] == (6, 4) for name in reals), {name: fields[name] for name in reals}

    dataset = ogr.Open(str(output))
    pairs = {(feature.GetField("class"), feature.GetField("class_label")) for feature in dataset.GetLayer(0)}
    del dataset
    words = dict(zip(result.card.class_names(), result.card.class_labels()))
    assert pairs and all(label == words[name] for name, label in pairs)


def test_water_polygons_keep_metres_to_a_decimetre_and_probabilities_to_four_decimals(tmp_path):
    grid = Grid(CRS.from_epsg(32633), from_origin(500_000.0, 5_000_000.0, 10.0, 10.0), 20, 20)
    mask = np.zeros((20, 20), np.uint8)
    mask[4:12, 5:15] = 1
    with write_geotiff(tmp_path / "mask.tif", grid, 1, "uint8", nodata=255) as writer:
        writer.write(mask, 1)
    with write_geotiff(tmp_path / "probability.tif", grid, 1, "float32", nodata=-1.0) as writer:
        writer.write(np.where(mask == 1, 0.87654321, 0.1).astype("float32"), 1)
    output = tmp_path / "water.fgb"
    vectorize_mask(tmp_path / "mask.tif", output, probability_path=tmp_path / "probability.tif")
    fields = field_types(output)
    assert fields["area_m2"][0] == fields["perimeter_m"][0] == "Real"
    assert fields["area_m2"][2] == fields["perimeter_m"][2] == 1
    assert fields["mean_probability"][1:] == (6, 4)
