"""Water label building (issue 15): offsets, 20 m -> 10 m stacking, thresholds, agreement rules,
the data's own labels, hand corrections and the pair layout the trainer reads.

Real GDAL files written to tmp_path, real arrays with known answers; one clearly marked test reads
one small file of ../shared/data/s2_scenes when it is there.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS
from rasterio.transform import from_origin

from satvision.core.errors import SatVisionError
from satvision.core.raster import Grid, write_geotiff
from satvision.training.segmentation_pairs import find_pairs, split_pairs
from satvision.training.segmentation_sampling import PatchSource
from satvision.training.water_label_builder import (
    BANDS,
    IGNORE,
    LAND,
    LULC_EVIDENCE,
    MNDWI_BOUNDS,
    NO_OPINION,
    SCL_EVIDENCE,
    WATER,
    Correction,
    SceneLabel,
    combine,
    evidence_from_classes,
    evidence_from_mask,
    label_scene,
    otsu_threshold,
    reconcile_levels,
    scene_threshold,
    spectral_class,
)
from satvision.training.water_label_review import write_contact_sheet, write_review_png
from satvision.training.water_label_scenes import (
    BandSource,
    Scene,
    correction_features,
    load_collection_scene,
    nominal_grid,
    offset_check,
    offset_from_manifest,
    read_bands,
    read_corrections,
    remove_offset,
    stack_bands,
    usable,
    write_pair,
)

UTM = CRS.from_epsg(32633)
ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "s2_scenes"

# Typical reflectances (B2, B3, B4, B8, B11, B12)
CLEAR_WATER = (0.06, 0.07, 0.05, 0.02, 0.005, 0.003)
TURBID_WATER = (0.09, 0.13, 0.12, 0.08, 0.03, 0.02)
VEGETATION = (0.03, 0.06, 0.04, 0.35, 0.18, 0.09)
BARE_SOIL = (0.10, 0.13, 0.17, 0.24, 0.30, 0.24)
SNOW = (0.80, 0.78, 0.76, 0.72, 0.10, 0.09)
CLOUD = (0.45, 0.44, 0.44, 0.47, 0.35, 0.25)
WET_DARK = (0.025, 0.03, 0.025, 0.06, 0.015, 0.01)  # dark, NIR > green: MNDWI and AWEI_nsh say water, NDWI and AWEI_sh not


def scene_of(*columns: tuple[tuple[float, ...], int], rows: int = 4) -> np.ndarray:
    """A ``(6, rows, sum(widths))`` reflectance array of vertical stripes (spectrum, width)."""
    stripes = [np.broadcast_to(np.array(spectrum, np.float32)[:, None, None], (6, rows, width))
               for spectrum, width in columns]
    return np.concatenate(stripes, axis=2).copy()


def write_band_file(path: Path, values: np.ndarray, pixel: float, names: list[str], dtype: str = "uint16") -> Path:
    grid = Grid(UTM, from_origin(400000, 5800000, pixel, pixel), values.shape[-1], values.shape[-2])
    with write_geotiff(path, grid, values.shape[0], dtype, nodata=0, band_names=names) as out:
        out.write(values.astype(dtype))
    return path


# --------------------------------------------------------------------------- offsets and bands


def test_offset_is_removed_and_dark_pixels_stay_valid():
    raw = np.array([[[1000, 1500], [980, 0]]], dtype=np.int16)  # 980: dark water with negative noise
    valid = np.array([[True, True], [True, False]])
    out = remove_offset(raw, valid, 1000)
    assert out.dtype == np.uint16
    assert out[0].tolist() == [[1, 500], [1, 0]]  # valid values never become nodata 0; invalid stay 0


def test_offset_read_from_manifest_scaling_and_checked_against_data():
    assert offset_from_manifest("int16 TOA reflectance x10000 + offset 1000 (B10 cirrus min=1004)") == 1000
    assert offset_from_manifest("int16 surface reflectance x10000 + offset 1000 LIKELY (all-band minimum=969)") == 1000
    assert offset_from_manifest("int16 TOA reflectance x10000, no offset (B10 cirrus min=54)") == 0
    assert offset_from_manifest("uint16 surface reflectance x10000") == 0
    valid = np.ones((2, 2), bool)
    assert "agrees" in offset_check(np.full((1, 2, 2), 1010), valid, 1000)
    assert "WARNING" in offset_check(np.full((1, 2, 2), 300), valid, 1000)
    assert "WARNING" in offset_check(np.full((1, 2, 2), 1200), valid, 0)


def test_20m_bands_are_stacked_onto_the_10m_grid(tmp_path):
    ten = np.arange(1, 8 * 8 + 1, dtype=np.uint16).reshape(1, 8, 8) * 10
    twenty = np.full((1, 4, 4), 2000, dtype=np.uint16)
    twenty[0, :, 2:] = 3000  # right half brighter
    b2 = write_band_file(tmp_path / "b2.tif", ten, 10.0, ["B2"])
    b11 = write_band_file(tmp_path / "b11.tif", twenty, 20.0, ["B11"])
    grid, values, valid = stack_bands([BandSource(b2, 1, "B2"), BandSource(b11, 1, "B11")], BandSource(b2, 1, "B2"))
    assert (grid.width, grid.height, grid.pixel_size) == (8, 8, (10.0, 10.0))
    assert values.shape == (2, 8, 8) and valid.all()
    np.testing.assert_array_equal(values[0], ten[0])
    assert values[1, :, 0].tolist() == [2000] * 8 and values[1, :, 7].tolist() == [3000] * 8
    assert np.all((values[1, :, 3:5] > 2000) & (values[1, :, 3:5] < 3000))  # bilinear across the 20 m edge


def test_bands_are_found_by_description_in_any_order(tmp_path):
    names = ["B12", "B11", "B8", "B4", "B3", "B2", "B5"]
    values = np.stack([np.full((3, 3), 100 * (i + 1)) for i in range(len(names))])
    path = write_band_file(tmp_path / "shuffled.tif", values, 10.0, names)
    _grid, read, valid, _georeferenced = read_bands(path)
    assert [int(read[i, 0, 0]) for i in range(6)] == [600, 500, 400, 300, 200, 100]  # B2…B12
    assert valid.all()


def test_eight_bit_and_swir_less_images_are_not_usable(tmp_path):
    eight_bit = write_band_file(tmp_path / "tci.tif", np.full((6, 3, 3), 100), 10.0, list(BANDS), dtype="uint8")
    no_swir = write_band_file(tmp_path / "rgbn.tif", np.full((4, 3, 3), 100), 10.0, ["B4", "B3", "B2", "B8"])
    good = write_band_file(tmp_path / "good.tif", np.full((6, 3, 3), 100), 10.0, list(BANDS))
    assert "8-bit" in usable(eight_bit)
    assert "lacks" in usable(no_swir)
    assert usable(good) is None


def write_unreferenced(path: Path, values: np.ndarray, names: list[str]) -> Path:
    """A GeoTIFF without CRS or transform, as the DSen2 crops are."""
    with rasterio.open(path, "w", driver="GTiff", width=values.shape[-1], height=values.shape[-2],
                       count=values.shape[0], dtype="uint16", nodata=0) as out:
        out.write(values.astype("uint16"))
        for index, name in enumerate(names, start=1):
            out.set_band_description(index, name)
    return path


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_files_without_crs_are_placed_on_their_tiles_nominal_grid(tmp_path):
    north = nominal_grid(Path("S2A_MSIL1C_20170527_T33UUB_crop600.tif"), 60, 40)
    south = nominal_grid(Path("S2B_MSIL1C_20171022_T49JGM_crop600.tif"), 60, 40)
    assert north.crs == CRS.from_epsg(32633) and south.crs == CRS.from_epsg(32749)  # bands C-M are south
    assert north.pixel_size == (10.0, 10.0) and (north.width, north.height) == (60, 40)
    square = np.zeros((40, 60), bool)
    square[10:20, 30:45] = True
    for grid in (north, south):  # hand corrections are WGS 84 outlines: they land on the same pixels
        path = tmp_path / f"{grid.crs.to_epsg()}.geojson"
        path.write_text(json.dumps({"type": "FeatureCollection", "features": correction_features(square, grid, LAND)}))
        np.testing.assert_array_equal(read_corrections(path, grid)[0].mask, square)
    assert nominal_grid(Path("crop600.tif"), 60, 40) is None
    assert nominal_grid(Path("T61UUB_x.tif"), 60, 40) is None  # no UTM zone 61

    values = np.full((6, 5, 5), 1200)
    named = write_unreferenced(tmp_path / "S2A_MSIL1C_20170527_T33UUB_crop.tif", values, list(BANDS))
    anonymous = write_unreferenced(tmp_path / "crop.tif", values, list(BANDS))
    assert usable(named) is None
    assert "no CRS" in usable(anonymous) and "T##XXX" in usable(anonymous)

    scene = load_collection_scene(named, {"sensor_product": "S2 L1C (TOA)", "scaling": "no offset", "licence": "CC BY 4.0"})
    assert not scene.georeferenced and scene.grid == nominal_grid(named, 5, 5)
    assert any("nominal" in note for note in scene.notes)
    image, _label = write_pair(tmp_path / "data", scene, np.zeros((5, 5), np.uint8), {})
    with rasterio.open(image) as dataset:
        assert dataset.crs == CRS.from_epsg(32633) and "nominal" in dataset.tags()["GEOREFERENCING"]


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_nominal_grids_are_never_joined_as_one_acquisition(tmp_path):
    """Two un-georeferenced crops in one UTM zone share the nominal grid but not a place."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_water_labels", ROOT / "scripts" / "build_water_labels.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    values = np.full((6, 4, 4), 1200)
    scenes = []
    for level, product in (("L1C", "S2 L1C (TOA)"), ("L2A", "S2 L2A")):
        path = write_unreferenced(tmp_path / f"S2A_MSI{level}_2017_T33UUB_{level}.tif", values, list(BANDS))
        scenes.append(load_collection_scene(path, {"sensor_product": product, "scaling": "no offset"}))
    assert scenes[0].grid == scenes[1].grid
    first = SceneLabel(np.full((4, 4), WATER, np.uint8), threshold=0.0, otsu=None)
    second = SceneLabel(np.full((4, 4), LAND, np.uint8), threshold=0.0, otsu=None)
    joined = script.reconcile_processing_levels(scenes, [first, second])
    assert joined[0].label.tolist() == first.label.tolist() and joined[1].label.tolist() == second.label.tolist()
    assert not any("joined" in note for scene in scenes for note in scene.notes)


# --------------------------------------------------------------------------- threshold and rules


def test_otsu_finds_the_gap_between_two_modes_and_is_bounded():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(-0.4, 0.05, 5000), rng.normal(0.5, 0.05, 3000)]).astype(np.float32)
    threshold = otsu_threshold(values)
    assert -0.25 < threshold < 0.35
    assert scene_threshold(values, np.ones(values.shape, bool)) == pytest.approx(np.clip(threshold, *MNDWI_BOUNDS))
    # One land mode only: Otsu splits it in two far below the bound; the bound keeps fields land.
    land_only = rng.normal(-0.5, 0.1, 8000).astype(np.float32)
    assert otsu_threshold(land_only) < MNDWI_BOUNDS[0]
    assert scene_threshold(land_only, np.ones(land_only.shape, bool)) == MNDWI_BOUNDS[0]
    # Only valid pixels count.
    valid = np.zeros(values.shape, bool)
    valid[:5000] = True
    assert scene_threshold(values, valid) == MNDWI_BOUNDS[0]
    assert otsu_threshold(np.zeros(10, np.float32)) is None


def test_spectral_class_of_known_surfaces():
    reflectance = scene_of((CLEAR_WATER, 2), (TURBID_WATER, 2), (VEGETATION, 2), (BARE_SOIL, 2), (SNOW, 2),
                           (CLOUD, 2), (WET_DARK, 2))
    valid = np.ones(reflectance.shape[1:], bool)
    valid[0, 0] = False
    out = spectral_class(reflectance, valid, threshold=0.0)
    assert out[1:, 0:4].tolist() == [[WATER] * 4] * 3  # clear and turbid water
    assert out[:, 4:8].tolist() == [[LAND] * 4] * 4  # vegetation, bare soil
    assert out[:, 8:10].tolist() == [[LAND] * 2] * 4  # snow is not water
    assert out[:, 10:12].tolist() == [[IGNORE] * 2] * 4  # under a cloud: undecidable
    assert out[:, 12:14].tolist() == [[IGNORE] * 2] * 4  # the indices disagree: ignore, not land
    assert out[0, 0] == IGNORE  # no data


def test_evidence_tables_for_scl_and_lulc():
    scl = np.array([[0, 3, 4, 5, 6, 7, 8, 9, 10, 11, 2]])
    assert evidence_from_classes(scl, SCL_EVIDENCE).tolist() == [[IGNORE, IGNORE, LAND, LAND, WATER, NO_OPINION,
                                                                 IGNORE, IGNORE, IGNORE, LAND, NO_OPINION]]
    lulc = np.array([[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 42]])
    assert evidence_from_classes(lulc, LULC_EVIDENCE).tolist() == [[IGNORE, WATER, LAND, IGNORE, LAND, LAND, LAND,
                                                                   LAND, IGNORE, LAND, NO_OPINION]]


def test_evidence_agreement_rules():
    spectral = np.array([[WATER, WATER, LAND, LAND, IGNORE, IGNORE, IGNORE, WATER, LAND]], np.uint8)
    votes = np.array([[1, 1, 0, 0, 1, 0, 0, 1, 0]], bool)
    osm_water = evidence_from_mask(np.array([[1, 0, 1, 0, 1, 1, 0, 1, 0]], bool), WATER)
    burn = evidence_from_mask(np.array([[0, 1, 0, 1, 0, 0, 1, 1, 0]], bool), LAND)
    out = combine(spectral, [osm_water, burn], votes)
    assert out.tolist() == [[
        WATER,   # both say water
        IGNORE,  # spectral water inside a burn perimeter: disagreement
        IGNORE,  # OSM water, spectral land: disagreement
        LAND,    # both say land
        WATER,   # undecided + OSM water + an index votes water
        IGNORE,  # undecided + OSM water, but no index votes water
        LAND,    # undecided inside a burn perimeter
        IGNORE,  # the data's labels disagree with each other
        LAND,    # no data label: the spectral class stands
    ]]
    scl_cloud = np.full(spectral.shape, IGNORE, np.uint8)
    assert set(combine(spectral, [scl_cloud], votes).ravel()) == {IGNORE}


def test_label_scene_ignores_where_evidence_disagrees_and_applies_corrections_last():
    reflectance = scene_of((CLEAR_WATER, 4), (VEGETATION, 4), (WET_DARK, 4), rows=6)
    valid = np.ones(reflectance.shape[1:], bool)
    lulc = np.full(valid.shape, 2)  # "trees" everywhere, also over the water stripe
    evidence = [evidence_from_classes(lulc, LULC_EVIDENCE)]
    result = label_scene(reflectance, valid, evidence)
    assert set(result.label[:, 0:4].ravel()) == {IGNORE}  # spectral water vs LULC land
    assert set(result.label[:, 4:8].ravel()) == {LAND}
    assert set(result.label[:, 8:12].ravel()) == {LAND}  # undecided, LULC says land
    lake = np.zeros(valid.shape, bool)
    lake[:, 8:12] = True
    everywhere = np.ones(valid.shape, bool)
    corrected = label_scene(reflectance, valid, evidence,
                            [Correction(lake, WATER), Correction(everywhere, LAND, only=IGNORE)]).label
    assert set(corrected[:, 8:12].ravel()) == {WATER}  # the hand correction wins
    assert set(corrected[:, 0:4].ravel()) == {LAND}  # "only" changed just the ignored pixels
    assert set(corrected[:, 4:8].ravel()) == {LAND}


# --------------------------------------------------------------------------- corrections and output


def _scene(tmp_path: Path) -> Scene:
    reflectance = scene_of((CLEAR_WATER, 16), (VEGETATION, 16), rows=32)
    grid = Grid(UTM, from_origin(400000, 5800000, 10, 10), 32, 32)
    values = np.round(reflectance * 10000).astype(np.uint16)
    valid = np.ones((32, 32), bool)
    values[:, 0, 0] = 0
    valid[0, 0] = False
    return Scene(name="synthetic", grid=grid, values=values, valid=valid, source="test", processing_level="L2A",
                 licence="CC0")


def test_correction_polygons_from_geojson_are_applied(tmp_path):
    scene = _scene(tmp_path)
    square = np.zeros((32, 32), bool)
    square[8:16, 20:28] = True  # 8×8 px of vegetation, "hand-marked" as water
    features = correction_features(square, scene.grid, WATER, note="test")
    path = tmp_path / "synthetic.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    corrections = read_corrections(path, scene.grid)
    assert len(corrections) == 1 and corrections[0].label == WATER
    np.testing.assert_array_equal(corrections[0].mask, square)  # WGS 84 round trip lands on the same pixels
    label = label_scene(scene.reflectance, scene.valid, [], corrections).label
    assert (label[square] == WATER).all()
    assert (label[:, 16:][~square[:, 16:]] == LAND).all()
    bad = tmp_path / "bad.geojson"
    bad.write_text(json.dumps({"type": "FeatureCollection", "features": [dict(features[0], properties={"label": 2})]}))
    with pytest.raises(SatVisionError, match="'label' property 0"):
        read_corrections(bad, scene.grid)


def test_pairs_are_written_in_the_layout_the_trainer_reads(tmp_path):
    scene = _scene(tmp_path)
    result = label_scene(scene.reflectance, scene.valid)
    image, label = write_pair(tmp_path / "data", scene, result.label, {"VALUES": "0 land, 1 water, 255 ignore"})
    pairs = find_pairs(tmp_path / "data")
    assert [(p.image, p.label) for p in pairs] == [(image, label)]
    with rasterio.open(image) as dataset:
        assert dataset.descriptions == BANDS and dataset.dtypes[0] == "uint16" and dataset.nodata == 0
    with rasterio.open(label) as dataset:
        assert dataset.dtypes[0] == "uint8" and dataset.nodata == IGNORE
    source = PatchSource(list(BANDS))
    source.check(pairs)
    split = split_pairs(pairs)
    sample = source.reader(pairs[0]).read(split.train[0], 0, 0, 32)
    assert sample.values.shape == (6, 32, 32)
    assert sample.label[0, 0] == IGNORE  # the nodata pixel
    assert set(np.unique(sample.label[sample.valid])) <= {LAND, WATER, IGNORE}
    stop = split.train[0].row_stop  # one image: split by rows, the rest of the window is ignored
    assert (sample.label[1:stop, :16] == WATER).all() and (sample.label[1:stop, 16:] == LAND).all()
    assert (sample.label[stop:] == IGNORE).all()


def test_review_pictures_and_contact_sheet(tmp_path):
    from PIL import Image

    scene = _scene(tmp_path)
    label = label_scene(scene.reflectance, scene.valid).label
    one = write_review_png(tmp_path / "review" / "a.png", "a", scene.values, scene.valid, label)
    two = write_review_png(tmp_path / "review" / "b.png", "b", scene.values, scene.valid, label)
    sheet = write_contact_sheet(tmp_path / "review" / "sheet.png", [one, two], columns=2, width=300)
    with Image.open(one) as picture:
        assert picture.width > 3 * 256 and picture.height > 256  # three panels, small scene enlarged
        pixels = np.asarray(picture.convert("RGB"))
    water_panel = pixels[30:, 2 * (picture.width // 3) + 10: 2 * (picture.width // 3) + 100]
    assert (water_panel[..., 2] > water_panel[..., 0]).mean() > 0.9  # water drawn blue
    with Image.open(sheet) as picture:
        assert picture.width >= 600


@pytest.mark.skipif(not (SHARED / "terramind" / "433D_629L_3_1_S2L2A.tif").is_file(),
                    reason="needs ../shared/data/s2_scenes (shared data, present in CI)")
def test_shared_terramind_l2a_with_offset_gets_its_river(tmp_path):
    """Uses one small shared file: the Chilean river scene (L2A with the +1000 offset, ESRI LULC)."""
    from satvision.training.water_label_scenes import collection, load_collection_scene

    chosen, skipped = collection(SHARED)
    row = next(row for path, row in chosen if path.name == "433D_629L_3_1_S2L2A.tif")
    assert {path.name for path, _ in chosen if path.parent.name == "dsen2_NO_GEOREF"} == {
        "S2A_MSIL1C_20170527_T33UUB_crop600.tif", "S2B_MSIL1C_20171022_T49JGM_crop600.tif"}  # nominal grids
    assert any("8-bit" in s.reason for s in skipped)
    scene = load_collection_scene(SHARED / row["file"], row)
    assert scene.offset_removed == 1000 and scene.values[:, scene.valid].min() >= 1
    result = label_scene(scene.reflectance, scene.valid, [layer for _, layer in scene.evidence])
    lulc_water = scene.evidence[0][1] == WATER
    assert result.share(WATER, scene.valid) > 0.005
    # The 20-40 m river is mixed with riparian trees: its centre is water, its banks ignored, never land.
    assert (result.label[lulc_water] == WATER).mean() > 0.15
    assert (result.label[lulc_water] == LAND).mean() == 0
    assert (result.label[~lulc_water] == WATER).mean() < 0.01


def test_one_place_at_two_levels_gets_one_label():
    first = np.array([[WATER, WATER, WATER, LAND, LAND, IGNORE, IGNORE]], dtype=np.uint8)
    second = np.array([[WATER, IGNORE, LAND, LAND, IGNORE, IGNORE, WATER]], dtype=np.uint8)
    joined = reconcile_levels(first, second)
    assert joined.tolist() == [[WATER, WATER, IGNORE, LAND, LAND, IGNORE, WATER]]
    assert np.array_equal(reconcile_levels(second, first), joined), "the order of the levels does not matter"
    with pytest.raises(ValueError, match="one shape"):
        reconcile_levels(first, second[:, :3])


@pytest.mark.skipif(not (SHARED / "terramind" / "433D_629L_3_1_S2L2A.tif").is_file(),
                    reason="needs ../shared/data/s2_scenes (shared data, present in CI)")
def test_shared_terramind_river_gets_the_same_label_at_l1c_and_l2a():
    """The builder script joins the L1C and L2A labels of one acquisition: before, the L2A label
    ignored most of the 433D river that the L1C label called water (4.8 % vs 1.5 % water)."""
    import importlib.util

    from satvision.training.water_label_scenes import collection, load_collection_scene

    spec = importlib.util.spec_from_file_location("build_water_labels", ROOT / "scripts" / "build_water_labels.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    chosen, _ = collection(SHARED)
    scenes = [load_collection_scene(path, row) for path, row in chosen if path.name.startswith("433D_629L_3_1_S2L")]
    assert sorted(scene.processing_level for scene in scenes) == ["L1C", "L2A"]
    automatic = [script.automatic_label(scene) for scene in scenes]
    by_level = {scene.processing_level: label for scene, label in zip(scenes, automatic)}
    assert by_level["L1C"].share(WATER, scenes[0].valid) > 2 * by_level["L2A"].share(WATER, scenes[0].valid)
    joined = script.reconcile_processing_levels(scenes, automatic)
    assert np.array_equal(joined[0].label, joined[1].label)
    assert joined[0].share(WATER, scenes[0].valid) >= max(label.share(WATER, scenes[0].valid) for label in automatic)
    assert all("label joined with" in scene.notes[-1] for scene in scenes)
