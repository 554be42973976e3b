"""QGIS-free core of SatVision: raster I/O, devices, diagnostics and shared errors."""
