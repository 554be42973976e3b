"""Models and the model-file contract shared by training and the plugin.

Importing this package is cheap and needs no torch: cards, the catalogue and the file format
header are torch-free; building and loading networks imports torch on first use.
"""

from .card import ModelCard, load_card_json
from .catalog import ModelEntry, list_models

__all__ = ["ModelCard", "ModelEntry", "list_models", "load_card_json"]
