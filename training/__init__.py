"""Standalone training and evaluation of every SatVision model (no QGIS).

Writes model files in the format of :mod:`models.modelfile`, which the plugin loads.
"""
