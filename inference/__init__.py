"""Running models over rasters of any size (QGIS-free): tiling, batching, blending, writing."""
