"""``satvision:exporttrainingpairs``: image + water-label GeoTIFF pairs per polygon, with a manifest."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsFeatureRequest,
    QgsProcessingException,
    QgsProcessingOutputFile,
    QgsProcessingOutputNumber,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFolderDestination,
)

from ..earthengine.sentinel2 import TRAINING_WATER_LABEL
from . import earthengine_parameters as ee_parameters
from .base import SatVisionAlgorithm
from .qgis_enums import VECTOR_POLYGON

#: label choices offered here: JRC and Hansen (a pair without a label makes no sense)
LABEL_CHOICES = ["jrc", "hansen"]


class ExportTrainingPairsAlgorithm(SatVisionAlgorithm):
    algorithm_id = "exporttrainingpairs"
    display_name = "Export training pairs (Earth Engine)"
    group_name = "Data"
    group_key = "data"
    requires = ("ee",)
    help_text = (
        "For every polygon of the <b>areas</b> layer, downloads a Sentinel-2 image GeoTIFF "
        "(images/NAME.tif) and, on exactly the same grid, a water label GeoTIFF (labels/NAME.tif: "
        "0 land, 1 water, 255 no data) from JRC Global Surface Water or the Hansen datamask, and "
        "writes manifest.json with each pair's area, dates, scenes and sources. The folder is what "
        "<code>satvision train segmentation --data FOLDER</code> reads.\n\n"
        "Each area is fetched like <i>Fetch Sentinel-2</i> (same cloud masking, composite, bands and "
        "limits) over the bounding box of its polygon. <b>Name field</b> names the files (default: "
        "area_FID).\n\n" + ee_parameters.CREDENTIALS_HELP
    )

    AREAS = "AREAS"
    NAME_FIELD = "NAME_FIELD"
    OUTPUT = "OUTPUT"

    short_description = "Image and water-label GeoTIFF pairs per polygon from Google Earth Engine, for training a water model."
    parameter_help = {
        **ee_parameters.PARAMETER_HELP,
        AREAS: "One image and label pair is downloaded over the bounding box of each polygon.",
        NAME_FIELD: "Field whose values name the files (made safe and unique); empty: area_<feature id>.",
        ee_parameters.WATER_LABEL: "Source of the water labels (labels/NAME.tif: 0 land, 1 water, 255 no data).",
        OUTPUT: "Folder that receives images/, labels/ and manifest.json (what satvision train segmentation --data reads).",
    }

    def initAlgorithm(self, config=None) -> None:  # noqa: N802 - QGIS API
        self.addParameter(QgsProcessingParameterFeatureSource(
            self.AREAS, "Areas (polygons)", [VECTOR_POLYGON]))
        self.addParameter(QgsProcessingParameterField(
            self.NAME_FIELD, "Name field (file names)", parentLayerParameterName=self.AREAS, optional=True))
        ee_parameters.add_query_parameters(self, label_choices=LABEL_CHOICES, label_default=TRAINING_WATER_LABEL)
        ee_parameters.add_connection_parameters(self)
        self.addParameter(QgsProcessingParameterFolderDestination(self.OUTPUT, "Output folder"))
        self.addOutput(QgsProcessingOutputFile("MANIFEST", "Manifest (JSON)"))
        self.addOutput(QgsProcessingOutputNumber("PAIR_COUNT", "Pairs written"))

    def execute(self, parameters, context, feedback) -> dict[str, Any]:
        from ..earthengine.training_pairs import Area, export_training_pairs, safe_name

        source = self.parameterAsSource(parameters, self.AREAS, context)
        if source is None:
            raise QgsProcessingException("Give a polygon layer of areas to export.")
        name_field = self.parameterAsString(parameters, self.NAME_FIELD, context)
        wgs84 = QgsCoordinateReferenceSystem("EPSG:4326")
        to_wgs84 = QgsCoordinateTransform(source.sourceCrs(), wgs84, context.transformContext())
        areas, taken = [], set()
        for feature in source.getFeatures(QgsFeatureRequest()):
            geometry = feature.geometry()
            if geometry.isNull() or geometry.isEmpty():
                feedback.pushWarning(f"Feature {feature.id()} has no geometry; skipped.")
                continue
            box = to_wgs84.transformBoundingBox(geometry.boundingBox())
            name = feature[name_field] if name_field else f"area_{feature.id()}"
            areas.append(Area(safe_name(str(name), taken), (box.xMinimum(), box.yMinimum(), box.xMaximum(), box.yMaximum())))
        query = ee_parameters.read_query(self, parameters, context)
        settings = ee_parameters.read_fetch_settings(self, parameters, context, (0.0, 0.0, 1.0, 1.0), "EPSG:4326")
        folder = self.parameterAsString(parameters, self.OUTPUT, context)
        manifest = export_training_pairs(
            areas, query, settings, folder, ee_parameters.read_connection(self, parameters, context),
            feedback=self.core_feedback(feedback),
        )
        return {self.OUTPUT: folder, "MANIFEST": str(manifest), "PAIR_COUNT": len(areas)}
