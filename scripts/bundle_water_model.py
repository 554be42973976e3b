"""Turn a trained water model into a bundled default: float16 weights and a card that says what
trained it (every scene with its source and licence) and how it measured.

    .venv/bin/python scripts/bundle_water_model.py RUN/model.safetensors resources/models/water-default-6band.safetensors \\
        --acceptance .build/acceptance/RUN/acceptance.json --data .build/water_data --name satvision-water-6band

``--acceptance`` is the JSON :mod:`scripts.water_acceptance` wrote for this model (water_dev
figures beside NDWI > 0, L1C/L2A agreement, traps); ``--data`` the folder
:mod:`scripts.build_water_labels` wrote, whose ``summary.tsv`` lists each scene's source and
licence.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import sys
from pathlib import Path

from satvision.models.modelfile import compact_model, read_card

LICENCE_NOTE = ("CC-BY-SA-4.0: the weights derive from TerraMesh samples (CC-BY-SA-4.0, share-alike) among other "
                "data; every source and its licence is listed in training_data. Contains modified Copernicus "
                "Sentinel-2 data.")


def training_sources(data: Path) -> list[dict[str, str]]:
    with open(data / "summary.tsv", newline="", encoding="utf-8") as table:
        rows = [row for row in csv.DictReader(table, delimiter="\t") if row["pair_written"] == "yes"]
    return [{"scene": row["name"], "level": row["level"], "source": row["source"], "licence": row["licence"]} for row in rows]


def run_description(training_data: str, images: int) -> str:
    """The trainer's description of the run; runs made before the row split could be chosen called
    every row split "because fewer than 3 images were given"."""
    if images < 3:
        return training_data
    return (training_data.replace(" split into horizontal row bands", " each split into horizontal row bands")
            .replace(" because fewer than 3 images were given", "").replace("each each", "each"))


def figures(acceptance: dict) -> dict:
    water = acceptance["water_dev"]["water"]
    per_image = {Path(image["image"]).stem: {"iou": image["water"]["model"]["iou"], "ndwi_iou": image["water"]["ndwi"]["iou"]}
                 for image in acceptance["water_dev"]["per_image"]}
    pairs = {row["place"]: row["iou"] for row in acceptance["l1c_l2a"]}
    return {
        "water_dev": {
            "what": "3 hand-labelled Sen1Floods11 test chips (India, Spain, USA), never trained on; water IoU "
                    "through the tiled engine, beside NDWI = (B3 - B8) / (B3 + B8) > 0 on the same pixels",
            "pooled": water["pooled"]["model"], "pooled_ndwi": water["pooled"]["ndwi"],
            "mean_per_image": water["mean_per_image"]["model"], "mean_per_image_ndwi": water["mean_per_image"]["ndwi"],
            "per_image": per_image,
        },
        "l1c_l2a_mask_iou": {"what": "terramind places as L1C and L2A (original files, +1000 offset where present)",
                             **pairs},
        "water_called_on_traps": {row["scene"]: round(row["water_called"], 4) for row in acceptance["traps"]},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("target", type=Path)
    parser.add_argument("--acceptance", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--description", default="")
    arguments = parser.parse_args()

    card = read_card(arguments.model)
    run = json.loads((arguments.model.parent / "training.json").read_text())
    acceptance = json.loads(arguments.acceptance.read_text())
    sources = training_sources(arguments.data)
    validation = dict(card.metrics)
    bands = ", ".join(card.bands)
    training_data = (
        f"{len(sources)} Sentinel-2 scenes (L1C and L2A) labelled by scripts/build_water_labels.py "
        "(spectral indices with scene-adaptive thresholds, the labels that came with the data, reviewed pictures and "
        "hand corrections in training/label_corrections). "
        f"{run_description(card.training_data, len(sources))}. Scenes: "
        + "; ".join(f"{s['scene']} ({s['level']}; {s['source']}; licence: {s['licence']})" for s in sources)
    )
    index_names = ", ".join(index.name for index in card.normalisation.indices)
    indices = f" ({index_names} computed from them as input too)" if index_names else ""
    description = arguments.description or (
        f"Default SatVision water model for rasters with {bands}{indices}: {card.architecture.id} "
        f"({card.architecture.params.get('encoder_name')}, {card.architecture.params.get('encoder_depth')} stages), "
        "Sentinel-2 L1C or L2A reflectance x 10000 at 10 m.")
    bundled = dataclasses.replace(
        card, name=arguments.name, description=description, training_data=training_data, license="CC-BY-SA-4.0",
        metrics={**figures(acceptance), "validation_rows": validation},
        extra={**card.extra, "license_note": LICENCE_NOTE, "trained_for_epochs": run.get("last_epoch"), "training_seconds": run.get("seconds")},
    )
    compact_model(arguments.model, arguments.target, bundled)
    print(f"Wrote {arguments.target} ({arguments.target.stat().st_size / 2**20:.1f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
