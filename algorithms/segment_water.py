"""``satvision:segmentwater``: water polygons from a multispectral raster with a UNet-family model."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsFillSymbol,
    QgsProcessingLayerPostProcessorInterface,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterBand,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterVectorDestination,
    QgsSingleSymbolRenderer,
)

from ..core.devices import DEVICE_CHOICES
from ..inference.segment import SegmentationSettings
from ..provider.settings import user_models_folders
from .base import SatVisionAlgorithm
from .qgis_enums import DOUBLE, INTEGER, VECTOR_POLYGON

DEVICES = [choice for choice in DEVICE_CHOICES if choice != "mps"] + ["mps"]


class WaterStyle(QgsProcessingLayerPostProcessorInterface):
    """Blue, half-transparent fill with a dark blue outline for the loaded water layer."""

    def postProcessLayer(self, layer, context, feedback):  # noqa: N802 - QGIS API
        symbol = QgsFillSymbol.createSimple(
            {"color": "31,120,180,110", "outline_color": "8,48,107,255", "outline_width": "0.3"}
        )
        layer.setRenderer(QgsSingleSymbolRenderer(symbol))
        layer.triggerRepaint()


class SegmentWaterAlgorithm(SatVisionAlgorithm):
    algorithm_id = "segmentwater"
    display_name = "Segment water"
    group_name = "Segmentation"
    group_key = "segmentation"
    requires = ("torch", "segmentation_models_pytorch", "safetensors")
    help_text = (
        "Finds water in a Sentinel-2 (or similar multispectral) raster of any size and writes "
        "water polygons (with holes) to a vector layer in the raster's CRS, with area_m2, "
        "perimeter_m and mean_probability attributes.\n\n"
        "<b>Model</b>: empty for the bundled default water model, the name of a model from "
        "the user models folder (Processing options or SATVISION_MODELS_DIR), or a .safetensors "
        "model file. The model card says which bands the model needs (e.g. B2, B3, B4, B8): they "
        "are matched with the raster's band descriptions; choose <b>Bands</b> only to map them by "
        "position yourself, in the model's order.\n\n"
        "The raster is processed in overlapping tiles whose predictions are blended without seams; "
        "memory depends on tile and batch size, not on the raster size. Pixels without data stay "
        "nodata and never become water. Rasters in a geographic CRS or at another resolution "
        "are processed at the model's resolution in a UTM grid and results are brought back to "
        "the raster's grid.\n\n"
        "Optional outputs: the water probability (0–1) and the mask (1 water, 0 land) as GeoTIFFs "
        "on the raster's grid. Advanced: tile size, overlap and batch size (0/-1: the model's "
        "defaults), device (auto picks CUDA when present), probability threshold, minimum "
        "polygon area (m²; smaller polygons are dropped and smaller holes filled) and "
        "simplification tolerance (m). <b>Test-time augmentation</b> averages the water probability "
        "over flipped (and 90°-rotated) copies of each tile, turned back before averaging: steadier "
        "edges for 4 or 8 times the inference time; default the model card's."
    )

    INPUT = "INPUT"
    MODEL = "MODEL"
    BANDS = "BANDS"
    EXTENT = "EXTENT"
    TILE_SIZE = "TILE_SIZE"
    OVERLAP = "OVERLAP"
    BATCH_SIZE = "BATCH_SIZE"
    DEVICE = "DEVICE"
    THRESHOLD = "THRESHOLD"
    MIN_AREA = "MIN_AREA"
    SIMPLIFY = "SIMPLIFY"
    OUTPUT = "OUTPUT"
    PROBABILITY = "PROBABILITY"
    MASK = "MASK"

    #: Post-processors must outlive the algorithm instance until QGIS has loaded the layer.
    _styles: dict[str, WaterStyle] = {}

    def initAlgorithm(self, config=None) -> None:  # noqa: N802 - QGIS API
        self.addParameter(QgsProcessingParameterRasterLayer(self.INPUT, "Input raster (multispectral, e.g. Sentinel-2)"))
        self.addParameter(
            QgsProcessingParameterFile(
                self.MODEL, "Model (empty: bundled default water model; a model name or a .safetensors file)",
                optional=True,
                # "All files (*)" keeps model names acceptable: QGIS's default "(*.*)" wants a dot
                fileFilter="SatVision models (*.safetensors);;All files (*)",
            )
        )
        self.addParameter(
            QgsProcessingParameterBand(
                self.BANDS, "Bands in the model's order (empty: match band descriptions)",
                parentLayerParameterName=self.INPUT, optional=True, allowMultiple=True,
            )
        )
        self.addParameter(QgsProcessingParameterExtent(self.EXTENT, "Limit to extent", optional=True))
        self.addParameter(
            QgsProcessingParameterVectorDestination(self.OUTPUT, "Water polygons", type=VECTOR_POLYGON)
        )
        self.addParameter(
            QgsProcessingParameterRasterDestination(self.PROBABILITY, "Water probability", optional=True, createByDefault=False)
        )
        self.addParameter(QgsProcessingParameterRasterDestination(self.MASK, "Water mask", optional=True, createByDefault=False))
        advanced = [
            QgsProcessingParameterNumber(self.TILE_SIZE, "Tile size in pixels (0: the model's)", INTEGER, 0, minValue=0),
            QgsProcessingParameterNumber(self.OVERLAP, "Tile overlap in pixels (-1: the model's)", INTEGER, -1, minValue=-1),
            QgsProcessingParameterNumber(self.BATCH_SIZE, "Batch size (tiles per forward pass)", INTEGER, 4, minValue=1),
            QgsProcessingParameterEnum(self.DEVICE, "Device", options=DEVICES, defaultValue=0),
            self.test_time_augmentation_parameter(),
            QgsProcessingParameterNumber(self.THRESHOLD, "Water probability threshold", DOUBLE, 0.5, minValue=0.0, maxValue=1.0),
            QgsProcessingParameterNumber(self.MIN_AREA, "Minimum polygon and hole area (m²)", DOUBLE, 300.0, minValue=0.0),
            QgsProcessingParameterNumber(self.SIMPLIFY, "Simplification tolerance (m, 0: none)", DOUBLE, 5.0, minValue=0.0),
        ]
        self.add_advanced_parameters(advanced)
        self.addOutput(QgsProcessingOutputNumber("POLYGON_COUNT", "Water polygons"))
        self.addOutput(QgsProcessingOutputNumber("WATER_AREA_M2", "Water area (m²)"))
        self.addOutput(QgsProcessingOutputNumber("TILE_COUNT", "Tiles processed"))
        self.addOutput(QgsProcessingOutputString("DEVICE_USED", "Device that ran the model"))

    def execute(self, parameters, context, feedback) -> dict[str, Any]:
        from ..inference.water import segment_water

        layer, bounds = self.raster_and_bounds(parameters, context, self.INPUT, self.EXTENT)
        overlap = self.parameterAsInt(parameters, self.OVERLAP, context)
        settings = SegmentationSettings(
            tile_size=self.parameterAsInt(parameters, self.TILE_SIZE, context) or None,
            overlap=None if overlap < 0 else overlap,
            batch_size=self.parameterAsInt(parameters, self.BATCH_SIZE, context),
            device=DEVICES[self.parameterAsEnum(parameters, self.DEVICE, context)],
            test_time_augmentation=self.test_time_augmentation(parameters, context),
            threshold=self.parameterAsDouble(parameters, self.THRESHOLD, context),
            bounds=bounds,
            band_positions=self.parameterAsInts(parameters, self.BANDS, context) or None,
        )
        polygons_path = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        probability_path = self.parameterAsOutputLayer(parameters, self.PROBABILITY, context) or None
        mask_path = self.parameterAsOutputLayer(parameters, self.MASK, context) or None
        result = segment_water(
            layer.source(),
            polygons_path,
            model=self.parameterAsFile(parameters, self.MODEL, context) or None,
            probability_path=probability_path,
            mask_path=mask_path,
            settings=settings,
            min_area_m2=self.parameterAsDouble(parameters, self.MIN_AREA, context),
            simplify_m=self.parameterAsDouble(parameters, self.SIMPLIFY, context),
            user_model_dirs=user_models_folders(),
            progress=lambda fraction: feedback.setProgress(100.0 * fraction),
            is_cancelled=feedback.isCanceled,
            log=feedback.pushInfo,
        )
        for warning in result.warnings:
            feedback.reportError(warning, False)
        if context.willLoadLayerOnCompletion(polygons_path):
            style = self._styles.setdefault(polygons_path, WaterStyle())
            context.layerToLoadOnCompletionDetails(polygons_path).setPostProcessor(style)
        return {
            self.OUTPUT: polygons_path,
            self.PROBABILITY: probability_path,
            self.MASK: mask_path,
            "POLYGON_COUNT": result.polygons.polygon_count,
            "WATER_AREA_M2": result.polygons.total_area_m2,
            "TILE_COUNT": result.run.tile_count,
            "DEVICE_USED": result.run.device,
        }
