"""Test-time augmentation: average the network's class probabilities over flipped and rotated views.

Overhead imagery has no "up", so a tile rotated by 90° or mirrored shows the same land cover. The
dihedral views are exact (no interpolation), so averaging over them removes the orientation bias a
network keeps after training with flip/rotation augmentation (the bundled classifier's gain is in
the README and its card). Each view costs one forward pass (``flips``: 4, ``d4``: 8).

Segmentation outputs are rotated and flipped back before averaging, so every pixel's probability
is averaged over the same ground position.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Sequence

if TYPE_CHECKING:
    import torch

#: Card and parameter values: none (1 view), flips (identity, horizontal, vertical, both), d4 (all 8
#: rotations and mirror images).
TTA_MODES = ("none", "flips", "d4")
TTA_TITLES = {"none": "None (1 pass)", "flips": "Flips (4 passes)", "d4": "Flips and 90° rotations (8 passes)"}

# A view: (quarter turns, mirror left-right) applied in that order: mirror(rot90(x, k)).
View = tuple[int, bool]
_VIEWS: dict[str, tuple[View, ...]] = {
    "none": ((0, False),),
    "flips": ((0, False), (0, True), (2, True), (2, False)),  # vertical flip = rot180 + mirror; both = rot180
    "d4": tuple((turns, mirror) for turns in range(4) for mirror in (False, True)),
}


def check_mode(mode: str) -> str:
    if mode not in TTA_MODES:
        raise ValueError(f"Unknown test-time augmentation {mode!r}; choose one of {', '.join(TTA_MODES)}.")
    return mode


def views(mode: str) -> Sequence[View]:
    """The views of ``mode`` (the first is always the unchanged input)."""
    return _VIEWS[check_mode(mode)]


def pass_count(mode: str) -> int:
    """Forward passes per batch for ``mode``."""
    return len(views(mode))


def _apply(x: "torch.Tensor", view: View) -> "torch.Tensor":
    import torch

    turns, mirror = view
    out = torch.rot90(x, turns, dims=(-2, -1)) if turns else x
    return out.flip(-1) if mirror else out


def _undo(x: "torch.Tensor", view: View) -> "torch.Tensor":
    import torch

    turns, mirror = view
    out = x.flip(-1) if mirror else x
    return torch.rot90(out, -turns, dims=(-2, -1)) if turns else out


def averaged_probabilities(forward: Callable[["torch.Tensor"], "torch.Tensor"], inputs: "torch.Tensor",
                           mode: str = "none") -> "torch.Tensor":
    """Mean softmax over the views of ``mode`` of ``forward(inputs)`` (logits, class axis 1).

    Logits of shape ``(B, classes)`` are averaged as they are; ``(B, classes, H, W)`` maps are turned
    back into the input's orientation first (they must have the input's height and width).
    """
    import torch

    total = None
    chosen = views(mode)
    for view in chosen:
        probabilities = torch.softmax(forward(_apply(inputs, view)).float(), dim=1)
        if probabilities.dim() == 4:
            probabilities = _undo(probabilities, view)
        total = probabilities if total is None else total + probabilities
    return total / len(chosen)
