"""What a water model's call on a dark burn scar rests on: change one thing in the scar, run the engine again.

    .venv/bin/python scripts/burn_scar_probe.py --model MODEL.safetensors [--output FOLDER]

For the darkest burnt pixels of ``s2_scenes/wildfire_ca`` (inside the CAL FIRE perimeter, green below
2 % reflectance), each variant scales some bands of those pixels only and runs the file through the
real engine (:func:`segment_water`, as ``scripts/water_acceptance.py`` does), then reports the share
of them the model calls water. If the call followed the spectrum that tells char from water (near
infrared well above green: NDWI about -0.4 over char, above -0.2 over all but 0.1 % of the labelled
training water), raising B8 alone would turn it to land; if it follows the shape and darkness of
the patch, it does not.

A 6-band model (B2-B4, B8, B11, B12) runs too: these files lack B11, so it gets B11 = 1.15 x B12 (an
assumption: over char and dry grass B11 lies a little above B12), and the variants scale the SWIR
bands, to show how much SWIR it needs to call char land. That matters for distillation: a 6-band
teacher reads the SWIR of synthetic scars, which their illumination shades with the rest.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import rasterio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from water_acceptance import B11_FROM_B12, ROOT, SHARED, reflectance_from_tci, water_mask  # noqa: E402

SCENES = ("CODY_20240608", "CANAL_20240530")
#: Green (B3) below this (reflectance x 10000) inside the perimeter: the near-black char.
DARK_GREEN = 200
#: name -> per-band factors on the dark burnt pixels, by band name (others unchanged).
FOUR_BAND_VARIANTS = {
    "as is": {},
    "B8 x 1.5": {"B8": 1.5},
    "B8 x 2": {"B8": 2.0},
    "visible x 0.7": {"B2": 0.7, "B3": 0.7, "B4": 0.7},
    "all x 2": {"B2": 2.0, "B3": 2.0, "B4": 2.0, "B8": 2.0},
    "all x 3": {"B2": 3.0, "B3": 3.0, "B4": 3.0, "B8": 3.0},
}
SIX_BAND_VARIANTS = {
    "as is (B11 = 1.15 x B12)": {},
    "SWIR x 0.5": {"B11": 0.5, "B12": 0.5},
    "SWIR x 0.3": {"B11": 0.3, "B12": 0.3},
}


def probe_bands(bands: list[str]) -> tuple[str, ...]:
    """The bands the probe files carry: the 6-band model's when the model reads SWIR 1, else those of the files."""
    return ("B2", "B3", "B4", "B8", "B11", "B12") if "B11" in bands else ("B2", "B3", "B4", "B8", "B12")


def variant_file(reflectance: Path, bands: tuple[str, ...], dark: np.ndarray, factors: dict[str, float], target: Path) -> Path:
    with rasterio.open(reflectance) as source:
        values = dict(zip(("B2", "B3", "B4", "B8", "B12"), source.read().astype(np.float32)))
        profile = source.profile | {"count": len(bands)}
    values["B11"] = values["B12"] * B11_FROM_B12
    with rasterio.open(target, "w", **profile) as sink:
        for index, band in enumerate(bands, start=1):
            data = values[band].copy()
            data[dark] *= factors.get(band, 1.0)
            sink.write(data, index)
            sink.set_band_description(index, band)
    return target


def probe(model: Path, output: Path) -> list[dict]:
    from satvision.models.modelfile import read_card

    model_bands = list(read_card(model).bands)
    bands = probe_bands(model_bands)
    variants = SIX_BAND_VARIANTS if "B11" in bands else FOUR_BAND_VARIANTS
    folder = SHARED / "s2_scenes" / "wildfire_ca"
    rows = []
    for scene in SCENES:
        reflectance = reflectance_from_tci(folder / f"{scene}_post_fire.tif", output / f"{scene}_reflectance.tif")
        with rasterio.open(folder / f"{scene}_burn_mask.tif") as source:
            perimeter = source.read(1) > 0
        with rasterio.open(reflectance) as source:
            green = source.read(2)
        dark = perimeter & (green < DARK_GREEN) & (green > 0)
        for name, factors in variants.items():
            image = variant_file(reflectance, bands, dark, factors, output / f"{scene}_{len(rows)}.tif")
            mask = water_mask(model, image, output)
            rows.append({"scene": scene, "variant": name, "dark_burnt_pixels": int(dark.sum()),
                         "water_called": float((mask[dark] == 1).mean())})
            print(f"{scene}  {name:26s} water in {dark.sum()} dark burnt px: {rows[-1]['water_called']:.1%}")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--output", type=Path, default=ROOT / ".build" / "burn_scar_probe")
    arguments = parser.parse_args()
    output = arguments.output / f"{arguments.model.parent.name}_{arguments.model.stem}"
    output.mkdir(parents=True, exist_ok=True)
    rows = probe(arguments.model, output)
    (output / "probe.json").write_text(json.dumps({"model": str(arguments.model), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
