"""A teacher model decides the pixels the water label rule left undecided (issue 15).

Real parts throughout: GeoTIFF pairs in the layout ``scripts/build_water_labels.py`` writes, a real
6-band smp UNet saved as a SatVision model file and run through the real engine. A teacher whose
head is set to one class (weights zero, a large bias) gives a known answer; a random teacher is
checked against the engine's own probability, computed apart.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import rasterio
from PIL import Image
from rasterio.crs import CRS
from rasterio.transform import from_origin

from satvision.core.errors import SatVisionError
from satvision.core.feedback import CallbackFeedback
from satvision.core.raster import Grid, write_geotiff
from satvision.training.teacher_labels import FilledCounts, fill_undecided, teach_labels
from satvision.training.water_label_builder import BANDS, IGNORE, LAND, WATER, reconcile_levels

ROOT = Path(__file__).resolve().parents[1]
GRID = Grid(CRS.from_epsg(32633), from_origin(400000, 5800000, 10, 10), 48, 40)


def six_band_teacher(folder: Path, bias: tuple[float, float] | None = None, seed: int = 0) -> Path:
    """A tiny 6-band UNet model file; with ``bias`` its head ignores the image and says that."""
    import sys

    import torch

    sys.path.insert(0, str(Path(__file__).parent))
    from conftest import tiny_unet_card

    from satvision.models.architectures import build_network
    from satvision.models.modelfile import save_model

    torch.manual_seed(seed)
    card = tiny_unet_card(name="tiny-teacher", bands=list(BANDS),
                          normalisation={"reflectance_scale": 10000.0, "mean": [0.1] * 6, "std": [0.05] * 6},
                          tiling={"tile_size": 64, "overlap": 8})
    state = build_network(card).state_dict()
    if bias is not None:
        state["segmentation_head.0.weight"].zero_()
        state["segmentation_head.0.bias"].copy_(torch.tensor(bias))
    return save_model(folder / "teacher.safetensors", state, card)


def write_pair(data: Path, name: str, values: np.ndarray, label: np.ndarray, level: str) -> tuple[Path, Path]:
    image, label_path = data / "images" / f"{name}.tif", data / "labels" / f"{name}.tif"
    with write_geotiff(image, GRID, 6, "uint16", nodata=0, band_names=list(BANDS), tags={"PROCESSING_LEVEL": level}) as out:
        out.write(values)
    with write_geotiff(label_path, GRID, 1, "uint8", nodata=IGNORE, band_names=["water"], tags={"VALUES": "0 land, 1 water"}) as out:
        out.write(label[None])
    return image, label_path


def scene(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random reflectance x 10000 with a no-data corner, and a label: water left, land right, an
    undecided band across the middle and over the no-data corner."""
    rng = np.random.default_rng(seed)
    values = rng.integers(200, 3000, size=(6, GRID.height, GRID.width)).astype(np.uint16)
    values[:, :6, :6] = 0
    label = np.full((GRID.height, GRID.width), LAND, np.uint8)
    label[:, : GRID.width // 2] = WATER
    label[15:25] = IGNORE
    label[:6, :6] = IGNORE
    return values, label


def read(path: Path) -> np.ndarray:
    with rasterio.open(path) as dataset:
        return dataset.read(1)


def test_only_undecided_pixels_with_data_change_and_only_where_the_teacher_is_sure():
    label = np.array([[LAND, WATER, IGNORE, IGNORE, IGNORE, IGNORE]], np.uint8)
    probability = np.array([[0.99, 0.01, 0.95, 0.05, 0.6, -1.0]], np.float32)
    filled, counts = fill_undecided(label, probability, confidence=0.9)
    assert filled.tolist() == [[LAND, WATER, WATER, LAND, IGNORE, IGNORE]]
    assert counts == FilledCounts(undecided=3, to_water=1, to_land=1) and counts.still_undecided == 1
    assert fill_undecided(label, probability, confidence=0.55)[0].tolist() == [[LAND, WATER, WATER, LAND, WATER, IGNORE]]
    for bad in (0.5, 1.2):
        with pytest.raises(SatVisionError, match="confidence"):
            fill_undecided(label, probability, confidence=bad)
    with pytest.raises(SatVisionError, match="differ in size"):
        fill_undecided(label, probability[:, :3])


@pytest.mark.parametrize("bias, decided", [((-8.0, 8.0), WATER), ((8.0, -8.0), LAND), ((0.0, 0.0), IGNORE)])
def test_a_sure_teacher_decides_every_undecided_pixel_with_data(tmp_path, bias, decided):
    values, label = scene(0)
    image, label_path = write_pair(tmp_path / "data", "a", values, label, "L1C")
    taught = teach_labels(tmp_path / "data", six_band_teacher(tmp_path, bias), tmp_path / "taught", device="cpu")

    [pair] = taught
    assert pair.image.read_bytes() == image.read_bytes()  # the image unchanged
    after = read(pair.label)
    undecided_with_data = (label == IGNORE) & (values[0] > 0)
    assert (after[~undecided_with_data] == label[~undecided_with_data]).all()  # labelled and no-data pixels as they were
    assert (after[undecided_with_data] == decided).all()
    count = int(undecided_with_data.sum())
    assert pair.counts == FilledCounts(count, count * (decided == WATER), count * (decided == LAND))
    with rasterio.open(pair.label) as dataset:
        assert dataset.crs == GRID.crs and dataset.transform == GRID.transform and dataset.nodata == IGNORE
        tags = dataset.tags()
    assert tags["VALUES"] == "0 land, 1 water" and tags["TEACHER"] == "tiny-teacher"
    assert tags["TEACHER_WATER"] == str(pair.counts.to_water) and tags["TEACHER_LAND"] == str(pair.counts.to_land)
    summary = (tmp_path / "taught" / "summary.tsv").read_text().splitlines()
    assert summary[1].split("\t")[:6] == ["a", str(label.size), str(count), str(pair.counts.to_water),
                                          str(pair.counts.to_land), str(pair.counts.still_undecided)]
    with Image.open(pair.review) as picture:
        assert picture.width > 3 * 256  # true colour | before | after
        pixels = np.asarray(picture.convert("RGB")).astype(int)
    third = picture.width // 3
    scale = (picture.height - 18) // GRID.height
    middle_row = 18 + 20 * scale + scale // 2  # inside the undecided band, below the title
    before = pixels[middle_row, third + 20: 2 * third - 20]
    after_panel = pixels[middle_row, 2 * third + 20: -20]
    assert (before[:, 0] > before[:, 1]).mean() > 0.9  # magenta: undecided
    if decided == WATER:
        assert (after_panel[:, 2] > after_panel[:, 0]).mean() > 0.9  # blue: water


def test_the_l1c_and_l2a_of_one_acquisition_keep_one_label(tmp_path):
    """A random teacher, measured apart through the engine, decides each image; the pair gets the join."""
    from satvision.inference.predictor import Predictor
    from satvision.inference.segment_engine import SegmentationSettings, segment_raster
    from satvision.models.modelfile import load_model

    values, label = scene(1)
    other, _ = scene(2)
    other[:, :6, :6] = 0
    data = tmp_path / "data"
    images = [write_pair(data, "x_L1C", values, label, "L1C")[0], write_pair(data, "x_L2A", other, label, "L2A")[0]]
    teacher = six_band_teacher(tmp_path, seed=3)
    taught = teach_labels(data, teacher, tmp_path / "taught", confidence=0.51, device="cpu")

    network, card = load_model(teacher, task="segmentation")
    predictor = Predictor(network, card, "cpu")
    alone = []
    for number, image in enumerate(images):
        probability = tmp_path / f"p{number}.tif"
        segment_raster(image, predictor, probability, tmp_path / f"m{number}.tif", SegmentationSettings(reflectance_offset=0.0))
        alone.append(fill_undecided(label, read(probability), 0.51)[0])
    assert not np.array_equal(alone[0], alone[1])  # the two levels were decided differently...
    joined = reconcile_levels(*alone)
    for pair in taught:
        assert np.array_equal(read(pair.label), joined)  # ...and both got the one joined label
    assert (joined[label != IGNORE] == label[label != IGNORE]).all()


def test_the_output_never_lies_in_or_over_the_data(tmp_path):
    values, label = scene(0)
    write_pair(tmp_path / "data", "a", values, label, "L1C")
    teacher = six_band_teacher(tmp_path)
    for output in (tmp_path / "data", tmp_path / "data" / "taught", tmp_path):
        with pytest.raises(SatVisionError, match="apart from the data"):
            teach_labels(tmp_path / "data", teacher, output)
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["images", "labels"]
    messages: list[str] = []
    with pytest.raises(SatVisionError, match="confidence"):
        teach_labels(tmp_path / "data", teacher, tmp_path / "out", confidence=0.4, feedback=CallbackFeedback(log=messages.append))
    assert messages == [] and not (tmp_path / "out").exists()  # refused before the teacher ran or anything was written


def test_the_script_writes_the_contact_sheet_and_tells_what_changed(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("teach_water_labels", ROOT / "scripts" / "teach_water_labels.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    values, label = scene(0)
    write_pair(tmp_path / "data", "a", values, label, "L1C")
    teacher = six_band_teacher(tmp_path, (8.0, -8.0))
    assert script.main(["--data", str(tmp_path / "data"), "--output", str(tmp_path / "out"), "--teacher", str(teacher),
                        "--device", "cpu"]) == 0
    undecided = int(((label == IGNORE) & (values[0] > 0)).sum())
    assert f"a: {undecided} undecided px, 0 now water, {undecided} now land, 0 still undecided" in capsys.readouterr().out
    assert (tmp_path / "out" / "review" / "contact_sheet.png").is_file()
