"""The architecture factory: a card's ``architecture.id`` → a torch network.

Each architecture registers a builder that receives the card and returns an ``nn.Module``;
the input channel count comes from the card's bands and the output count from its classes,
so a card always describes the network it builds. Builders import their libraries lazily.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from ..core.dependencies import require
from ..core.errors import ModelCardError
from .card import ModelCard

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class ArchitectureSpec:
    id: str
    task: str
    description: str
    build: Callable[[ModelCard], "torch.nn.Module"]
    requires: tuple[str, ...]


_ARCHITECTURES: dict[str, ArchitectureSpec] = {}


def register(id: str, task: str, description: str, requires: tuple[str, ...] = ("torch",)):
    """Decorator registering a builder ``card -> nn.Module`` under ``id``."""

    def decorator(build: Callable[[ModelCard], "torch.nn.Module"]):
        _ARCHITECTURES[id] = ArchitectureSpec(id, task, description, build, requires)
        return build

    return decorator


def architectures() -> dict[str, ArchitectureSpec]:
    """All registered architectures by id."""
    _register_builtin()
    return dict(_ARCHITECTURES)


def build_network(card: ModelCard) -> "torch.nn.Module":
    """Build the (randomly initialised) network a card describes."""
    known = architectures()
    spec = known.get(card.architecture.id)
    if spec is None:
        raise ModelCardError(
            f"Model {card.name!r} uses architecture {card.architecture.id!r}, which this "
            f"SatVision does not know (known: {', '.join(sorted(known))}). Update SatVision or "
            "fix architecture.id in the card."
        )
    if spec.task != card.task:
        raise ModelCardError(
            f"Architecture {spec.id!r} is a {spec.task} architecture but the card of "
            f"{card.name!r} says task {card.task!r}."
        )
    require(*spec.requires)
    try:
        return spec.build(card)
    except TypeError as error:
        raise ModelCardError(
            f"architecture.params of {card.name!r} do not fit {spec.id!r}: {error}."
        ) from error


def _register_builtin() -> None:
    """Import the modules whose decorators register the built-in architectures."""
    from . import classification, generation, segmentation  # noqa: F401
