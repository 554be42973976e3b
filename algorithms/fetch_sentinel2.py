"""``satvision:fetchsentinel2``: a cloud-masked Sentinel-2 composite from Earth Engine as a GeoTIFF."""

from __future__ import annotations

import json
from typing import Any

from qgis.core import (
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterRasterDestination,
)

from . import earthengine_parameters as ee_parameters
from .base import SatVisionAlgorithm
from .qgis_enums import VECTOR_POLYGON


class FetchSentinel2Algorithm(SatVisionAlgorithm):
    algorithm_id = "fetchsentinel2"
    display_name = "Fetch Sentinel-2 (Earth Engine)"
    group_name = "Data"
    group_key = "data"
    requires = ("ee",)
    help_text = (
        "Downloads an analysis-ready Sentinel-2 GeoTIFF from Google Earth Engine for an extent (or "
        "the extent of a polygon layer) and a date range, without Google Drive.\n\n"
        "Scenes over the extent in the dates with at most the <b>maximum scene cloud percentage</b> "
        "are cloud-masked (Cloud Score+, the L2A scene classification, or not at all) and combined: "
        "the median of clear pixels, the least-cloudy acquisition, or a mosaic with the most recent "
        "clear pixel on top. The output lies on a grid snapped to the <b>resolution</b> in the output "
        "CRS (default: the UTM zone of the extent's centre), every band at that resolution (by default "
        "B2, B3, B4, B8 and the 20 m SWIR bands B11, B12 resampled to 10 m, so Segment water runs its "
        "6-band model), with band descriptions (B2, …), "
        "reflectance × 10000 as UINT16 (recorded in the metadata) and 0 as nodata where no clear "
        "pixel exists. An optional <b>water label band</b> (JRC occurrence ≥ threshold, or the "
        "Hansen datamask as in the origin notebook) holds 1 = land, 2 = water, 0 = no data.\n\n"
        "The area is split into request tiles fetched in parallel, retried with back-off on rate "
        "limits and server errors; the size is estimated first and an area over <b>Maximum download "
        "size</b> is refused. The log lists the scenes used and the bytes fetched. Cancelling stops "
        "the requests and writes nothing.\n\n" + ee_parameters.CREDENTIALS_HELP
    )

    EXTENT = "EXTENT"
    AREA = "AREA"
    OUTPUT = "OUTPUT"

    short_description = "A cloud-masked Sentinel-2 composite GeoTIFF for an extent and dates, downloaded from Google Earth Engine."
    parameter_help = {
        **ee_parameters.PARAMETER_HELP,
        EXTENT: "The area to download, in any CRS; or leave empty and give a polygon layer below.",
        AREA: "Used when no extent is given: the extent of this layer's features is downloaded.",
        OUTPUT: "GeoTIFF (UINT16, reflectance × 10000, 0 = no data) with band descriptions.",
    }

    def initAlgorithm(self, config=None) -> None:  # noqa: N802 - QGIS API
        self.addParameter(QgsProcessingParameterExtent(self.EXTENT, "Extent", optional=True))
        self.addParameter(QgsProcessingParameterFeatureSource(
            self.AREA, "…or the extent of a polygon layer", [VECTOR_POLYGON], optional=True))
        ee_parameters.add_query_parameters(self)
        ee_parameters.add_connection_parameters(self)
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, "Sentinel-2 image"))
        self.addOutput(QgsProcessingOutputString("SCENES", "Scenes used (JSON: id, date, cloud)"))
        self.addOutput(QgsProcessingOutputNumber("SCENE_COUNT", "Number of scenes used"))
        self.addOutput(QgsProcessingOutputNumber("BYTES_FETCHED", "Bytes fetched"))
        self.addOutput(QgsProcessingOutputNumber("REQUESTS", "Pixel requests made (retries included)"))

    def execute(self, parameters, context, feedback) -> dict[str, Any]:
        from ..earthengine.fetch import fetch_sentinel2

        bounds, crs = self.area_bounds(parameters, context)
        query = ee_parameters.read_query(self, parameters, context)
        settings = ee_parameters.read_fetch_settings(self, parameters, context, bounds, crs)
        connection = ee_parameters.read_connection(self, parameters, context)
        output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        result = fetch_sentinel2(
            query, settings, output, connection, feedback=self.core_feedback(feedback),
        )
        scenes = [{"id": scene.id, "date": scene.date, "cloud": scene.cloud} for scene in result.scenes]
        return {
            self.OUTPUT: output,
            "SCENES": json.dumps(scenes),
            "SCENE_COUNT": len(scenes),
            "BYTES_FETCHED": result.stats.bytes,
            "REQUESTS": result.stats.requests,
        }

    def area_bounds(self, parameters, context) -> tuple[tuple[float, float, float, float], str]:
        """(west, south, east, north) and the CRS (WKT) of the extent or of the polygon layer."""
        if parameters.get(self.EXTENT):
            crs = self.parameterAsExtentCrs(parameters, self.EXTENT, context)
            extent = self.parameterAsExtent(parameters, self.EXTENT, context, crs)
        else:
            source = self.parameterAsSource(parameters, self.AREA, context)
            if source is None:
                raise QgsProcessingException("Give an extent, or a polygon layer whose extent to fetch.")
            crs, extent = source.sourceCrs(), source.sourceExtent()
        if not crs.isValid():
            raise QgsProcessingException("The extent has no coordinate reference system; choose it with the extent.")
        if extent.isNull() or extent.width() <= 0 or extent.height() <= 0:
            raise QgsProcessingException(
                "The extent has zero area. Draw or choose an extent with a width and a height (or a polygon layer with an area)."
            )
        return (extent.xMinimum(), extent.yMinimum(), extent.xMaximum(), extent.yMaximum()), crs.toWkt()

