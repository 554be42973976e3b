"""``satvision:segmentwater``: water polygons from a multispectral raster with a UNet-family model."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsFillSymbol,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterBand,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterVectorDestination,
    QgsSingleSymbolRenderer,
)

from ..inference.segment import SegmentationSettings
from ..provider.settings import JOB_LIMIT_HELP, max_job_hours, user_models_folders
from .base import SatVisionAlgorithm
from .device_choices import DEVICE_HELP, device_parameter, device_value
from .layer_styles import (
    MASK_OPACITY,
    PROBABILITY_OPACITY,
    LayerStack,
    attach,
    mask_renderer,
    probability_renderer,
    raster_style,
    show_decimals,
)
from .model_parameter import with_model_chooser
from .qgis_enums import DOUBLE, INTEGER, VECTOR_POLYGON
from .reflectance_offset import REFLECTANCE_OFFSET, REFLECTANCE_OFFSET_HELP, reflectance_offset_parameter, reflectance_offset_value


def water_polygon_style(layer) -> None:
    """Blue, half-transparent fill with a dark blue outline for the loaded water layer."""
    symbol = QgsFillSymbol.createSimple(
        {"color": "31,120,180,110", "outline_color": "8,48,107,255", "outline_width": "0.3"}
    )
    layer.setRenderer(QgsSingleSymbolRenderer(symbol))
    show_decimals(layer, {"area_m2": 1, "perimeter_m": 1, "mean_probability": 4})


#: Layer-tree ranks of the loaded outputs: polygons above the mask above the probability.
POLYGON_RANK, MASK_RANK, PROBABILITY_RANK = 3, 2, 1


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
        "<b>Model</b>: empty for the bundled default water model (the 6-band model, B2, B3, B4, B8, "
        "B11, B12, when the raster has those bands by description, else the 4-band one, B2, B3, B4, B8; "
        "with Bands given, the one with that many bands; the log says which ran and why), the name of a model from "
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
        "edges for 4 or 8 times the inference time; default the model card's. <b>Reflectance offset</b>: auto "
        "removes the +1000 that Sentinel-2 products of processing baseline 04.00 and later (from January 2022) "
        "add to every value, when found; 0 keeps the values as they are.\n\n"
        + JOB_LIMIT_HELP
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

    short_description = "Water polygons (and optional probability and mask rasters) from a Sentinel-2 raster with a UNet-family model."
    parameter_help = {
        INPUT: "A multispectral raster read by GDAL (e.g. a Sentinel-2 GeoTIFF) in any CRS, of any size.",
        MODEL: (
            "Empty: a bundled default water model, 6-band (B2, B3, B4, B8, B11, B12) when the raster has those "
            "bands, else 4-band (B2, B3, B4, B8). Otherwise the name of a model in the user models folder "
            "(Processing options or SATVISION_MODELS_DIR) or the path of a SatVision .safetensors model file."
        ),
        BANDS: (
            "Leave empty to match the model's bands (e.g. B2, B3, B4, B8) with the raster's band descriptions. "
            "Choose raster bands here, in the model's order, when the raster's bands have no such descriptions."
        ),
        EXTENT: "Process only this part of the raster (empty: the whole raster).",
        OUTPUT: "Water polygons (with holes) with area_m2, perimeter_m and mean_probability, in the raster's CRS.",
        PROBABILITY: "Optional GeoTIFF of the water probability (0–1) on the raster's grid.",
        MASK: "Optional GeoTIFF of the water mask (1 water, 0 land) on the raster's grid.",
        TILE_SIZE: "Side of the square tiles the model sees, in pixels; 0 uses the tile size in the model's card.",
        OVERLAP: "Pixels shared by neighbouring tiles, blended without seams; -1 uses the model's overlap.",
        BATCH_SIZE: "Tiles per forward pass: more is faster on a GPU but needs more memory.",
        DEVICE: DEVICE_HELP,
        THRESHOLD: "A pixel is water when its probability is at or above this value.",
        MIN_AREA: "Polygons smaller than this are dropped and holes smaller than this are filled (m²).",
        SIMPLIFY: "Tolerance for simplifying the polygon outlines, in metres; 0 keeps every pixel edge.",
        REFLECTANCE_OFFSET: REFLECTANCE_OFFSET_HELP,
    }

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
        with_model_chooser(self.parameterDefinition(self.MODEL), "segmentation")  # installed models in dialogs
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
            device_parameter(self.DEVICE),
            self.test_time_augmentation_parameter(),
            QgsProcessingParameterNumber(self.THRESHOLD, "Water probability threshold", DOUBLE, 0.5, minValue=0.0, maxValue=1.0),
            QgsProcessingParameterNumber(self.MIN_AREA, "Minimum polygon and hole area (m²)", DOUBLE, 300.0, minValue=0.0),
            QgsProcessingParameterNumber(self.SIMPLIFY, "Simplification tolerance (m, 0: none)", DOUBLE, 5.0, minValue=0.0),
            reflectance_offset_parameter(),
        ]
        self.add_advanced_parameters(advanced)
        self.addOutput(QgsProcessingOutputNumber("POLYGON_COUNT", "Number of water polygons"))
        self.addOutput(QgsProcessingOutputNumber("WATER_AREA_M2", "Water area (m²)"))
        self.addOutput(QgsProcessingOutputNumber("TILE_COUNT", "Tiles processed"))
        self.addOutput(QgsProcessingOutputString("DEVICE_USED", "Device that ran the model"))
        self.addOutput(QgsProcessingOutputNumber("REFLECTANCE_OFFSET_USED", "Reflectance offset subtracted (raster values)"))

    def execute(self, parameters, context, feedback) -> dict[str, Any]:
        from ..inference.water import segment_water

        layer, bounds = self.raster_and_bounds(parameters, context, self.INPUT, self.EXTENT)
        overlap = self.parameterAsInt(parameters, self.OVERLAP, context)
        settings = SegmentationSettings(
            tile_size=self.parameterAsInt(parameters, self.TILE_SIZE, context) or None,
            overlap=None if overlap < 0 else overlap,
            batch_size=self.parameterAsInt(parameters, self.BATCH_SIZE, context),
            device=device_value(self.parameterAsEnum(parameters, self.DEVICE, context)),
            test_time_augmentation=self.test_time_augmentation(parameters, context),
            threshold=self.parameterAsDouble(parameters, self.THRESHOLD, context),
            bounds=bounds,
            band_positions=self.band_numbers(parameters, self.BANDS, context),
            max_job_hours=max_job_hours(),
            reflectance_offset=reflectance_offset_value(self, parameters, context),
        )
        polygons_path = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        probability_path = self.optional_output_layer(parameters, self.PROBABILITY, context)
        mask_path = self.optional_output_layer(parameters, self.MASK, context)
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
            log=self.model_log(feedback),
        )
        for warning in result.warnings:
            feedback.reportError(warning, False)
        stack = LayerStack()
        attach(context, polygons_path, water_polygon_style, stack, POLYGON_RANK)
        attach(context, mask_path, raster_style(mask_renderer, MASK_OPACITY), stack, MASK_RANK)
        attach(context, probability_path, raster_style(probability_renderer, PROBABILITY_OPACITY), stack, PROBABILITY_RANK)
        return self.produced({
            self.OUTPUT: polygons_path,
            self.PROBABILITY: probability_path,
            self.MASK: mask_path,
            "POLYGON_COUNT": result.polygons.polygon_count,
            "WATER_AREA_M2": result.polygons.total_area_m2,
            "TILE_COUNT": result.run.tile_count,
            "DEVICE_USED": result.run.device,
            "REFLECTANCE_OFFSET_USED": result.run.reflectance_offset,
        })
