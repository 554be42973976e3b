"""SatVision: deep learning on satellite imagery, as a QGIS Processing plugin and a Python package.

This folder is both the QGIS plugin and the ``satvision`` Python package. Importing it needs no
QGIS: QGIS calls :func:`classFactory`, which alone imports the QGIS side.
"""

from .version import __version__  # noqa: F401 - the package's public version


def classFactory(iface):  # noqa: N802 - name required by QGIS
    """QGIS plugin entry point (desktop and qgis_process); ``iface`` is not kept (see plugin.py)."""
    from .core.triton_guard import keep_triton_out

    keep_triton_out()  # before anything imports torch: triton beside Mesa's libLLVM kills QGIS
    from .plugin import SatVisionPlugin

    return SatVisionPlugin()
