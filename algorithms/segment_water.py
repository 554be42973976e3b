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
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterVectorDestination,
    QgsSingleSymbolRenderer,
)

from ..inference.segment_engine import SegmentationSettings
from ..inference.segment_job import PolygonSettings
from ..provider.settings import JOB_LIMIT_HELP, max_job_hours, user_models_folders
from .base import SatVisionAlgorithm
from .declared_parameters import declared_option, number_parameter
from .device_choices import device_parameter, device_value
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
from .qgis_enums import VECTOR_POLYGON, set_help
from .reflectance_offset import reflectance_offset_parameter, reflectance_offset_value


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
        OUTPUT: "Water polygons (with holes) with area_m2, perimeter_m and mean_probability, in the raster's CRS.",
        PROBABILITY: "Optional GeoTIFF of the water probability (0–1) on the raster's grid.",
        MASK: "Optional GeoTIFF of the water mask (1 water, 0 land) on the raster's grid.",
        # the other parameters' help is declared with their settings (SegmentationSettings, PolygonSettings)
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
        bands = declared_option(SegmentationSettings, "band_positions").option
        self.addParameter(set_help(
            QgsProcessingParameterBand(self.BANDS, bands.label, parentLayerParameterName=self.INPUT, optional=True,
                                       allowMultiple=True),
            bands.help,
        ))
        extent = declared_option(SegmentationSettings, "bounds").option
        self.addParameter(set_help(QgsProcessingParameterExtent(self.EXTENT, extent.label, optional=True), extent.help))
        self.addParameter(
            QgsProcessingParameterVectorDestination(self.OUTPUT, "Water polygons", type=VECTOR_POLYGON)
        )
        self.addParameter(
            QgsProcessingParameterRasterDestination(self.PROBABILITY, "Water probability", optional=True, createByDefault=False)
        )
        self.addParameter(QgsProcessingParameterRasterDestination(self.MASK, "Water mask", optional=True, createByDefault=False))
        advanced = [
            number_parameter(self.TILE_SIZE, SegmentationSettings, "tile_size"),
            number_parameter(self.OVERLAP, SegmentationSettings, "overlap"),
            number_parameter(self.BATCH_SIZE, SegmentationSettings, "batch_size"),
            device_parameter(self.DEVICE, SegmentationSettings),
            self.test_time_augmentation_parameter(SegmentationSettings),
            number_parameter(self.THRESHOLD, SegmentationSettings, "threshold"),
            number_parameter(self.MIN_AREA, PolygonSettings, "min_area_m2"),
            number_parameter(self.SIMPLIFY, PolygonSettings, "simplify_m"),
            reflectance_offset_parameter(SegmentationSettings),
        ]
        self.add_advanced_parameters(advanced)
        self.addOutput(QgsProcessingOutputNumber("POLYGON_COUNT", "Number of water polygons"))
        self.addOutput(QgsProcessingOutputNumber("WATER_AREA_M2", "Water area (m²)"))
        self.addOutput(QgsProcessingOutputNumber("TILE_COUNT", "Tiles processed"))
        self.addOutput(QgsProcessingOutputString("DEVICE_USED", "Device that ran the model"))
        self.addOutput(QgsProcessingOutputNumber("REFLECTANCE_OFFSET_USED", "Reflectance offset subtracted (raster values)"))

    def execute(self, parameters, context, feedback) -> dict[str, Any]:
        from ..inference.segment_job import segment_water

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
            feedback=self.core_feedback(feedback),
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
