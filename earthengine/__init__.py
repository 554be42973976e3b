"""Google Earth Engine access (QGIS-free): credentials, requests and downloads."""
