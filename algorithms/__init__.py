"""Processing algorithms: thin wrappers that read parameters, call the core, report outputs."""

from __future__ import annotations


def all_algorithms() -> list:
    """A fresh instance of every SatVision algorithm (importing no heavy library)."""
    from .classify_tiles import ClassifyTilesAlgorithm
    from .diagnose import DiagnoseAlgorithm
    from .export_training_pairs import ExportTrainingPairsAlgorithm
    from .fetch_sentinel2 import FetchSentinel2Algorithm
    from .generate_imagery import GenerateImageryAlgorithm
    from .install_dependencies import InstallDependenciesAlgorithm
    from .segment_water import SegmentWaterAlgorithm

    return [
        DiagnoseAlgorithm(),
        InstallDependenciesAlgorithm(),
        FetchSentinel2Algorithm(),
        ExportTrainingPairsAlgorithm(),
        SegmentWaterAlgorithm(),
        ClassifyTilesAlgorithm(),
        GenerateImageryAlgorithm(),
    ]
