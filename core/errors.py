"""User-facing errors.

Every error a user can fix derives from :class:`SatVisionError`. Its message names the
problem and the fix; the Processing algorithms turn it into a ``QgsProcessingException``
and the CLI prints it without a traceback.
"""


class SatVisionError(Exception):
    """An error caused by input, configuration or environment that the user can fix."""


class MissingDependencyError(SatVisionError):
    """A Python package SatVision needs is not installed in the running interpreter."""


class RasterError(SatVisionError):
    """A raster cannot be read or does not fit what the task needs."""


class BandMismatchError(RasterError):
    """The raster's bands do not provide the bands a model needs."""


class ModelFileError(SatVisionError):
    """A model file is unreadable, damaged, unsafe or inconsistent with its card."""


class ModelCardError(ModelFileError):
    """A model card is missing fields, has unknown fields or invalid values."""


class TaskMismatchError(ModelFileError):
    """A model made for one task was given to another (a classifier to the segmenter)."""


class OperationCancelled(SatVisionError):
    """The user cancelled a long operation; outputs were not written."""
