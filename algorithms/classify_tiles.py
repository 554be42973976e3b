"""``satvision:classifytiles``: land-cover classes per tile of a raster (or of the whole raster)."""

from __future__ import annotations

import json
from typing import Any, Callable, Sequence

from qgis.core import (
    QgsCategorizedSymbolRenderer,
    QgsFillSymbol,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterBand,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFile,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterVectorDestination,
    QgsRendererCategory,
)

from ..inference.classify_engine import MODES, ClassificationSettings
from ..models.card import ModelCard
from ..provider.settings import JOB_LIMIT_HELP, max_job_hours, user_models_folders
from .base import SatVisionAlgorithm
from .declared_parameters import declared_option, enum_parameter, number_parameter
from .device_choices import device_parameter, device_value
from .layer_styles import CLASS_RASTER_OPACITY, LayerStack, attach, class_raster_renderer, raster_style, show_decimals
from .model_parameter import with_model_chooser
from .qgis_enums import VECTOR_POLYGON, set_help
from .reflectance_offset import reflectance_offset_parameter, reflectance_offset_value

MODE_LABELS = ["Grid of tiles", "Whole raster as one tile"]
#: Fill opacity (0–255) of classified tiles: the imagery stays visible underneath.
FILL_ALPHA = 150
NODATA_LABEL = "No data (skipped)"


#: Layer-tree ranks of the loaded outputs: tiles above the class raster.
TILES_RANK, CLASS_RASTER_RANK = 2, 1


def tile_class_style(card: ModelCard) -> Callable[[Any], None]:
    """Categorized by ``class`` in the model card's colours, legend in words; skipped tiles hollow grey."""
    from ..inference.classify_job import probability_field

    classes = [(item.name, item.colour, item.display_label) for item in sorted(card.classes, key=lambda c: c.index)]
    probabilities = ["confidence", "valid_share", *(f"prob_{rank}" for rank in range(2, 4)),
                     *(probability_field(item.name) for item in card.classes)]

    def apply(layer) -> None:
        layer.setRenderer(tile_class_renderer(classes))
        show_decimals(layer, dict.fromkeys(probabilities, 4))

    return apply


def class_raster_style(card: ModelCard) -> Callable[[Any], None]:
    """The class raster in the card's colours with the class labels in words; 255 (no data) not drawn."""
    classes = [(item.index, item.colour, item.display_label) for item in card.classes]
    return raster_style(lambda layer: class_raster_renderer(layer, classes), CLASS_RASTER_OPACITY)


def tile_class_renderer(classes: Sequence[tuple[str, str, str]]) -> QgsCategorizedSymbolRenderer:
    """One category per class (value = class id, legend = its label), and a hollow grey one for tiles without a class."""
    categories = []
    for name, colour, label in classes:
        red, green, blue = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
        symbol = QgsFillSymbol.createSimple({
            "color": f"{red},{green},{blue},{FILL_ALPHA}", "outline_color": f"{red},{green},{blue},255",
            "outline_width": "0.2",
        })
        categories.append(QgsRendererCategory(name, symbol, label))
    hollow = QgsFillSymbol.createSimple({"style": "no", "outline_color": "128,128,128,255", "outline_width": "0.2"})
    # an empty value is the "all other values" category: it draws the NULL class of skipped tiles
    categories.append(QgsRendererCategory("", hollow, NODATA_LABEL))
    return QgsCategorizedSymbolRenderer("class", categories)


class ClassifyTilesAlgorithm(SatVisionAlgorithm):
    algorithm_id = "classifytiles"
    display_name = "Classify tiles (land cover)"
    group_name = "Classification"
    group_key = "classification"
    requires = ("torch", "safetensors")
    help_text = (
        "Classifies a Sentinel-2 (or similar multispectral) raster tile by tile with a land-cover "
        "classifier (ViT, timm backbones) and writes one polygon per tile, in the raster's CRS, with "
        "its class, confidence, runners-up (class_2/prob_2, class_3/prob_3), the share of the tile "
        "with data and one p_&lt;class&gt; field per class.\n\n"
        "<b>Mode</b>: <i>Grid of tiles</i> cuts the raster (or the extent) into tiles of "
        "<b>Tile size</b> pixels every <b>Stride</b> pixels (0: the model's tile size; a stride "
        "smaller than the tile gives overlapping tiles); tiles whose share of valid pixels is under "
        "the minimum are not classified and come out with status nodata. <i>Whole raster as one "
        "tile</i> resamples the raster (or the extent) to a single model tile, for image chips "
        "such as EuroSAT patches; the outputs CLASS, CONFIDENCE and PROBABILITIES then give its "
        "class, that class's probability and every class's probability. In the grid mode they sum "
        "up the classified tiles: the most frequent class (a tie goes to the class listed first in "
        "the model), the share of classified tiles with that class, and every class's share.\n\n"
        "<b>Model</b>: empty for the bundled default land-cover model, the name of a model from "
        "the user models folder (Processing options or SATVISION_MODELS_DIR), or a .safetensors "
        "model file. The model card says which bands the model needs: they are matched with the "
        "raster's band descriptions; choose <b>Bands</b> only to map them by position yourself, "
        "in the model's order.\n\n"
        "Rasters in a geographic CRS or at another resolution are read at the model's resolution "
        "in a UTM grid; tile outlines are brought back to the raster's CRS. Memory depends on tile "
        "and batch size, not on the raster size. Optional output: a class raster with one pixel "
        "per tile (class index, 255 = no data, with the model's colours).\n\n"
        "<b>Test-time augmentation</b> (advanced) averages the class probabilities over flipped and "
        "90°-rotated copies of each tile (4 or 8 forward passes): overhead imagery has no up, and the "
        "average is steadier than one pass. The model card sets the default (the bundled "
        "classifier: all 8 views). <b>Reflectance offset</b> (advanced): auto removes the +1000 that "
        "Sentinel-2 products of processing baseline 04.00 and later (from January 2022) add to every value, "
        "when found; 0 keeps the values as they are.\n\n"
        + JOB_LIMIT_HELP
    )

    INPUT = "INPUT"
    BANDS = "BANDS"
    MODEL = "MODEL"
    EXTENT = "EXTENT"
    MODE = "MODE"
    TILE_SIZE = "TILE_SIZE"
    STRIDE = "STRIDE"
    BATCH_SIZE = "BATCH_SIZE"
    DEVICE = "DEVICE"
    MIN_VALID_SHARE = "MIN_VALID_SHARE"
    OUTPUT = "OUTPUT"
    OUTPUT_CLASS_RASTER = "OUTPUT_CLASS_RASTER"

    short_description = "Land-cover class of every tile of a raster (or of the whole raster) as polygons, with a classifier model."
    parameter_help = {
        INPUT: "A multispectral raster read by GDAL (e.g. a Sentinel-2 GeoTIFF) in any CRS, of any size.",
        MODEL: (
            "Empty: the bundled default land-cover model. Otherwise the name of a model in the user models folder "
            "(Processing options or SATVISION_MODELS_DIR) or the path of a SatVision .safetensors model file."
        ),
        OUTPUT: "One polygon per tile with class, confidence, runners-up, valid_share, status and p_<class> fields.",
        OUTPUT_CLASS_RASTER: "Optional GeoTIFF with one pixel per tile: the class index (255 = no data), in the model's colours.",
        # the other parameters' help is declared with their settings (ClassificationSettings)
    }

    def initAlgorithm(self, config=None) -> None:  # noqa: N802 - QGIS API
        self.addParameter(QgsProcessingParameterRasterLayer(self.INPUT, "Input raster (multispectral, e.g. Sentinel-2)"))
        bands = declared_option(ClassificationSettings, "band_positions").option
        self.addParameter(set_help(
            QgsProcessingParameterBand(self.BANDS, bands.label, parentLayerParameterName=self.INPUT, optional=True,
                                       allowMultiple=True),
            bands.help,
        ))
        self.addParameter(
            QgsProcessingParameterFile(
                self.MODEL, "Model (empty: bundled default land-cover model; a model name or a .safetensors file)",
                optional=True,
                # "All files (*)" keeps model names acceptable: QGIS's default "(*.*)" wants a dot
                fileFilter="SatVision models (*.safetensors);;All files (*)",
            )
        )
        with_model_chooser(self.parameterDefinition(self.MODEL), "classification")  # installed models in dialogs
        extent = declared_option(ClassificationSettings, "bounds").option
        self.addParameter(set_help(QgsProcessingParameterExtent(self.EXTENT, extent.label, optional=True), extent.help))
        self.addParameter(enum_parameter(self.MODE, ClassificationSettings, "mode", MODE_LABELS))
        self.addParameter(number_parameter(self.TILE_SIZE, ClassificationSettings, "tile_size"))
        self.addParameter(number_parameter(self.STRIDE, ClassificationSettings, "stride"))
        self.addParameter(
            QgsProcessingParameterVectorDestination(self.OUTPUT, "Classified tiles", type=VECTOR_POLYGON)
        )
        self.addParameter(
            QgsProcessingParameterRasterDestination(
                self.OUTPUT_CLASS_RASTER, "Class raster (one pixel per tile)", optional=True, createByDefault=False
            )
        )
        advanced = [
            number_parameter(self.BATCH_SIZE, ClassificationSettings, "batch_size"),
            device_parameter(self.DEVICE, ClassificationSettings),
            self.test_time_augmentation_parameter(ClassificationSettings),
            number_parameter(self.MIN_VALID_SHARE, ClassificationSettings, "min_valid_fraction"),
            reflectance_offset_parameter(ClassificationSettings),
        ]
        self.add_advanced_parameters(advanced)
        self.addOutput(QgsProcessingOutputString("CLASS", "Majority class (grid) / class (whole raster)"))
        self.addOutput(QgsProcessingOutputNumber(
            "CONFIDENCE", "Share of classified tiles in the majority class (grid) / probability of the class (whole raster)"))
        self.addOutput(QgsProcessingOutputString(
            "PROBABILITIES", "Share of classified tiles per class (grid) / probability per class (whole raster), JSON"))
        self.addOutput(QgsProcessingOutputNumber("TILE_COUNT", "Tiles"))
        self.addOutput(QgsProcessingOutputNumber("SKIPPED_TILES", "Tiles skipped (too little valid data)"))
        self.addOutput(QgsProcessingOutputString("DEVICE_USED", "Device that ran the model"))
        self.addOutput(QgsProcessingOutputNumber("REFLECTANCE_OFFSET_USED", "Reflectance offset subtracted (raster values)"))

    def execute(self, parameters, context, feedback) -> dict[str, Any]:
        from ..inference.classify_job import classify_tiles

        layer, bounds = self.raster_and_bounds(parameters, context, self.INPUT, self.EXTENT)
        mode = MODES[self.parameterAsEnum(parameters, self.MODE, context)]
        settings = ClassificationSettings(
            mode=mode,
            tile_size=self.parameterAsInt(parameters, self.TILE_SIZE, context) or None,
            stride=self.parameterAsInt(parameters, self.STRIDE, context) or None,
            batch_size=self.parameterAsInt(parameters, self.BATCH_SIZE, context),
            device=device_value(self.parameterAsEnum(parameters, self.DEVICE, context)),
            test_time_augmentation=self.test_time_augmentation(parameters, context),
            bounds=bounds,
            band_positions=self.band_numbers(parameters, self.BANDS, context),
            min_valid_fraction=self.parameterAsDouble(parameters, self.MIN_VALID_SHARE, context),
            max_job_hours=max_job_hours(),
            reflectance_offset=reflectance_offset_value(self, parameters, context),
        )
        tiles_path = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        class_raster_path = self.optional_output_layer(parameters, self.OUTPUT_CLASS_RASTER, context)
        feedback.pushInfo(f"Mode: {MODE_LABELS[MODES.index(mode)].lower()}")
        result = classify_tiles(
            layer.source(),
            tiles_path,
            model=self.parameterAsFile(parameters, self.MODEL, context) or None,
            class_raster_path=class_raster_path,
            settings=settings,
            user_model_dirs=user_models_folders(),
            feedback=self.core_feedback(feedback),
        )
        stack = LayerStack()
        attach(context, tiles_path, tile_class_style(result.card), stack, TILES_RANK)
        attach(context, class_raster_path, class_raster_style(result.card), stack, CLASS_RASTER_RANK)
        return self.produced({
            self.OUTPUT: tiles_path,
            self.OUTPUT_CLASS_RASTER: class_raster_path,
            **class_summary(result, mode),
            "TILE_COUNT": result.run.tile_count,
            "SKIPPED_TILES": result.run.skipped_tiles,
            "DEVICE_USED": result.run.device,
            "REFLECTANCE_OFFSET_USED": result.run.reflectance_offset,
        })


def class_summary(result, mode: str) -> dict[str, Any]:
    """CLASS, CONFIDENCE and PROBABILITIES (nothing when no tile was classified).

    Whole raster: the one tile's class, its probability and every class's probability. Grid: the
    most frequent class of the classified tiles (a tie goes to the class listed first in the
    model), the share of classified tiles with it and every class's share.
    """
    if mode == "whole":
        tile = result.first_tile
        if tile is None:
            return {}
        return {"CLASS": tile["class"], "CONFIDENCE": tile["confidence"], "PROBABILITIES": json.dumps(tile["probabilities"])}
    if not result.classified:
        return {}
    shares = {name: result.class_counts.get(name, 0) / result.classified for name in result.card.class_names()}
    majority = max(shares, key=shares.get)  # the first of equal shares: the class listed first
    return {"CLASS": majority, "CONFIDENCE": shares[majority], "PROBABILITIES": json.dumps(shares)}
