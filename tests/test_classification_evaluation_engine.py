"""``evaluate classification`` scores tiles through the inference engine: its figures are those of
Classify tiles (whole mode) on each chip, including the reflectance offset and nodata handling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
import torch

from satvision.core.raster import Grid, write_geotiff
from satvision.inference.classify_engine import ClassificationSettings, classify_raster
from satvision.inference.predictor import Predictor
from satvision.models.modelfile import load_model
from satvision.training.classification_evaluation import evaluate_classification

BANDS = ["B2", "B3", "B4", "B8"]


def write_chips(root: Path) -> list[tuple[Path, int]]:
    """16 px chips of two classes; some carry the +1000 offset of baseline 04.00, one a nodata corner."""
    rng = np.random.default_rng(3)
    grid = Grid(rasterio.crs.CRS.from_epsg(32633), rasterio.transform.from_origin(500000, 6000000, 10, 10), 16, 16)
    chips = []
    for label, name in ((1, "Forest"), (3, "SeaLake")):
        (root / name).mkdir(parents=True)
        for index in range(4):
            values = rng.integers(50, 3000, (4, 16, 16)).astype(np.uint16)
            if index % 2:
                values += 1000  # darkest value in [1000, 1200): the offset is detected
                values[:, 0, 0] = 1010
            if index == 3:
                values[:, :5, :5] = 0  # nodata
            path = root / name / f"{index}.tif"
            with write_geotiff(path, grid, 4, "uint16", nodata=0, band_names=BANDS) as out:
                out.write(values)
            chips.append((path, label))
    return chips


def test_evaluation_figures_are_those_of_classify_tiles_on_each_chip(saved_classifier, tmp_path):
    chips = write_chips(tmp_path / "chips")
    network, card = load_model(saved_classifier, task="classification", device="cpu")
    predictor = Predictor(network, card, "cpu")
    engine = []
    for path, label in chips:
        found = []
        run = classify_raster(path, predictor, found.extend, ClassificationSettings(mode="whole", device="cpu"))
        engine.append((found[0].probabilities, label, run.reflectance_offset))
    assert sorted({offset for _, _, offset in engine}) == [0.0, 1000.0]  # both kinds of chip are in the data

    evaluation = evaluate_classification(saved_classifier, tmp_path / "chips", device="cpu", batch_size=3)

    probabilities = torch.tensor(np.stack([item[0] for item in engine]))
    labels = torch.tensor([item[1] for item in engine])
    expected_confusion = torch.zeros(len(card.classes), len(card.classes), dtype=torch.long)
    for truth, predicted in zip(labels, probabilities.argmax(1)):
        expected_confusion[truth, predicted] += 1
    cross_entropy = float(torch.nn.functional.nll_loss(probabilities.clamp_min(1e-12).log(), labels))
    assert evaluation.confusion == expected_confusion.tolist()
    assert abs(evaluation.metrics["cross_entropy"] - cross_entropy) < 1e-5
    assert evaluation.metrics["tiles"] == len(chips)
