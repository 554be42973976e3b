"""Review pictures of water labels: true colour | false colour (SWIR) | label over true colour.

One PNG per labelled scene and a contact sheet of all of them, so that every automatic label is
looked at before it trains anything. In the label panel water is blue, ignore (255) magenta and
land left as the image; in the false-colour panel (B11, B8, B4) open water is near black, wet soil
and burn scars dark brown, vegetation green, snow cyan and cloud white.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ..core.atomic import atomic_path
from ..core.preview import stretch
from .water_label_builder import BANDS, IGNORE, WATER

PANEL_MIN = 256  #: small scenes are enlarged (nearest) to at least this size per panel
GAP = 4
TITLE = 18


def _composite(values: np.ndarray, valid: np.ndarray, names: Sequence[str]) -> np.ndarray:
    rgb = np.zeros((*valid.shape, 3), dtype=np.float32)
    for channel, name in enumerate(names):
        rgb[..., channel] = stretch(values[BANDS.index(name)].astype(np.float32), valid)
    rgb[~valid] = 0
    return rgb


def review_panels(values: np.ndarray, valid: np.ndarray, label: np.ndarray) -> np.ndarray:
    """The three panels side by side as an RGB uint8 array (``values`` in :data:`BANDS` order)."""
    true_colour = _composite(values, valid, ("B4", "B3", "B2"))
    false_colour = _composite(values, valid, ("B11", "B8", "B4"))
    return _side_by_side([true_colour, false_colour, _label_overlay(true_colour, valid, label)])


def _label_overlay(true_colour: np.ndarray, valid: np.ndarray, label: np.ndarray) -> np.ndarray:
    overlay = true_colour * 0.6
    overlay[label == WATER] = overlay[label == WATER] * 0.3 + np.array([0.1, 0.45, 1.0]) * 0.7
    overlay[label == IGNORE] = overlay[label == IGNORE] * 0.4 + np.array([1.0, 0.0, 1.0]) * 0.6
    overlay[~valid] = 0
    return overlay


def _side_by_side(panels: Sequence[np.ndarray]) -> np.ndarray:
    """Panels of one size in a row, enlarged (nearest) to at least :data:`PANEL_MIN`, as RGB uint8."""
    scale = max(1, int(np.ceil(PANEL_MIN / max(panels[0].shape[:2]))))
    panels = [np.kron(p, np.ones((scale, scale, 1))) if scale > 1 else p for p in panels]
    height, width = panels[0].shape[:2]
    out = np.ones((height, len(panels) * width + (len(panels) - 1) * GAP, 3), dtype=np.float32)
    for number, panel in enumerate(panels):
        out[:, number * (width + GAP): number * (width + GAP) + width] = panel
    return (out * 255).astype(np.uint8)


def _titled(picture: np.ndarray, title: str):
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (picture.shape[1], picture.shape[0] + TITLE), "white")
    image.paste(Image.fromarray(picture), (0, TITLE))
    ImageDraw.Draw(image).text((4, 3), title, fill="black")
    return image


def write_review_png(path: Path, title: str, values: np.ndarray, valid: np.ndarray, label: np.ndarray) -> Path:
    """Write the review picture of one scene (atomically)."""
    image = _titled(review_panels(values, valid, label), title)
    with atomic_path(path) as temporary:
        image.save(temporary, format="PNG")
    return path


def write_teacher_review_png(path: Path, title: str, values: np.ndarray, valid: np.ndarray, before: np.ndarray,
                             after: np.ndarray) -> Path:
    """True colour | label before | label after a teacher decided undecided pixels (see
    :mod:`training.teacher_labels`), written atomically."""
    true_colour = _composite(values, valid, ("B4", "B3", "B2"))
    panels = [true_colour, _label_overlay(true_colour, valid, before), _label_overlay(true_colour, valid, after)]
    image = _titled(_side_by_side(panels), title)
    with atomic_path(path) as temporary:
        image.save(temporary, format="PNG")
    return path


def write_contact_sheet(path: Path, pictures: Sequence[Path], columns: int = 2, width: int = 900) -> Path:
    """All review pictures, each scaled to ``width`` px, in a grid of ``columns``."""
    from PIL import Image

    images = []
    for picture in pictures:
        with Image.open(picture) as image:
            scale = width / image.width
            images.append(image.convert("RGB").resize((width, max(1, round(image.height * scale)))))
    rows = [images[i:i + columns] for i in range(0, len(images), columns)]
    heights = [max(image.height for image in row) for row in rows]
    sheet = Image.new("RGB", (columns * (width + GAP), sum(heights) + GAP * len(rows)), "white")
    top = 0
    for row, height in zip(rows, heights):
        for column, image in enumerate(row):
            sheet.paste(image, (column * (width + GAP), top))
        top += height + GAP
    with atomic_path(path) as temporary:
        sheet.save(temporary, format="PNG")
    return path
