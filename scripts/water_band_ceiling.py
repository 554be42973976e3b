"""How much water a per-pixel rule on some bands can tell apart on the ``water_dev`` chips: a ceiling, not a model.

    .venv/bin/python scripts/water_band_ceiling.py [--bands B2,B3,B4,B8 --bands B2,B3,B4,B8,B11,B12] [--json]

For each band set, a small MLP (log reflectance in, two hidden layers of 128) is fitted to every labelled pixel
of the three hand-labelled chips and scored on those same pixels, at the probability threshold that scores
best: the water IoU (pooled over the chips, and per chip) that the best single per-pixel rule on those bands
reaches when it is allowed to see the answers. It is optimistic by construction (fitted to the yardstick,
no context) and is never a model: nothing here is saved or shipped, and no SatVision model is trained on
``water_dev``. It answers one question: is a model's shortfall on these chips in the bands (a ceiling
below the goal) or in what the model learnt from its training data (a ceiling above it)?
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import rasterio
import torch

ROOT = Path(__file__).resolve().parent.parent
WATER_DEV = ROOT.parent / "shared" / "data" / "water_dev"
#: Sen1Floods11 S2Hand chips: the 13 Sentinel-2 L1C bands in this order; labels -1 unlabelled, 0 land, 1 water
CHIP_BANDS = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12")
DEFAULT_BAND_SETS = ("B2,B3,B4,B8", "B2,B3,B4,B8,B11,B12")


def labelled_pixels(folder: Path) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Chip names, and per labelled pixel with data: the 13 bands (reflectance × 10000), water (0/1) and chip index."""
    names, values, labels, chips = [], [], [], []
    for index, image in enumerate(sorted((folder / "images").glob("*_S2Hand.tif"))):
        name = image.name.removesuffix("_S2Hand.tif")
        with rasterio.open(image) as source:
            bands = source.read().astype(np.float32)
        with rasterio.open(folder / "labels" / f"{name}_LabelHand.tif") as source:
            label = source.read(1)
        keep = (label >= 0) & (bands > 0).all(axis=0)
        names.append(name)
        values.append(bands[:, keep].T)
        labels.append(label[keep])
        chips.append(np.full(int(keep.sum()), index))
    return names, np.concatenate(values), np.concatenate(labels).astype(np.float32), np.concatenate(chips)


def ceiling(values: np.ndarray, water: np.ndarray, chips: np.ndarray, band_indexes: list[int], steps: int = 1500,
            seed: int = 0) -> dict:
    """Fit the per-pixel MLP on ``band_indexes`` and score it on the same pixels at its best threshold."""
    torch.manual_seed(seed)
    features = torch.log(torch.from_numpy(values[:, band_indexes]).clamp_min(1.0) / 10000.0)
    features = (features - features.mean(0)) / features.std(0)
    target = torch.from_numpy(water)
    network = torch.nn.Sequential(torch.nn.Linear(len(band_indexes), 128), torch.nn.ReLU(), torch.nn.Linear(128, 128),
                                  torch.nn.ReLU(), torch.nn.Linear(128, 1))
    optimiser = torch.optim.Adam(network.parameters(), 3e-3)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        batch = torch.randint(0, len(target), (8192,), generator=generator)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(network(features[batch]).squeeze(1), target[batch])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        probability = torch.sigmoid(network(features).squeeze(1)).numpy()
    truth = water == 1
    best: dict | None = None
    for threshold in np.round(np.arange(0.1, 0.91, 0.05), 2):
        called = probability >= threshold
        pooled = float((called & truth).sum() / (called | truth).sum())
        if best is None or pooled > best["pooled_iou"]:
            per_chip = [float((called & truth & (chips == c)).sum() / ((called | truth) & (chips == c)).sum())
                        for c in range(int(chips.max()) + 1)]
            best = {"threshold": float(threshold), "pooled_iou": pooled, "per_chip_iou": per_chip,
                    "mean_iou": float(np.mean(per_chip))}
    assert best is not None
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=WATER_DEV, help="the water_dev folder (images/, labels/)")
    parser.add_argument("--bands", action="append", help="a comma-separated band set, repeatable (default: 4 and 6 bands)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    arguments = parser.parse_args()
    names, values, water, chips = labelled_pixels(arguments.data)
    results = {}
    for band_set in arguments.bands or DEFAULT_BAND_SETS:
        bands = band_set.split(",")
        unknown = [band for band in bands if band not in CHIP_BANDS]
        if unknown:
            raise SystemExit(f"Unknown band(s) {', '.join(unknown)}: the chips have {', '.join(CHIP_BANDS)}.")
        results[band_set] = ceiling(values, water, chips, [CHIP_BANDS.index(band) for band in bands])
    if arguments.json:
        print(json.dumps({"chips": names, "pixels": int(len(water)), "ceilings": results}, indent=2))
        return
    print(f"{len(water)} labelled pixels of {', '.join(names)} (fitted and scored on the same pixels: a ceiling, not a model)")
    for band_set, result in results.items():
        per_chip = " / ".join(f"{value:.3f}" for value in result["per_chip_iou"])
        print(f"{band_set}: pooled water IoU {result['pooled_iou']:.3f}, mean {result['mean_iou']:.3f} "
              f"(per chip {per_chip}) at threshold {result['threshold']:.2f}")


if __name__ == "__main__":
    main()
