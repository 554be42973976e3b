"""The SatVision Processing provider (QGIS side)."""
