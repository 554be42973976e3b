"""``satvision:classifytiles``: land-cover classes per tile of a raster (or of the whole raster)."""

from __future__ import annotations

import json
from typing import Any, Sequence

from qgis.core import (
    QgsCategorizedSymbolRenderer,
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
    QgsRendererCategory,
)

from ..core.devices import DEVICE_CHOICES
from ..inference.classify import MODES, ClassificationSettings
from ..provider.settings import user_models_folders
from .base import SatVisionAlgorithm
from .qgis_enums import DOUBLE, INTEGER, VECTOR_POLYGON

DEVICES = list(DEVICE_CHOICES)
MODE_LABELS = ["Grid of tiles", "Whole raster as one tile"]
#: Fill opacity (0–255) of classified tiles: the imagery stays visible underneath.
FILL_ALPHA = 150
NODATA_LABEL = "No data (skipped)"


class TileClassStyle(QgsProcessingLayerPostProcessorInterface):
    """Categorized by ``class`` in the model card's colours; skipped tiles hollow grey."""

    def __init__(self, classes: Sequence[tuple[str, str]]) -> None:
        super().__init__()
        self.classes = list(classes)  # (name, "#rrggbb") in class-index order

    def postProcessLayer(self, layer, context, feedback):  # noqa: N802 - QGIS API
        layer.setRenderer(tile_class_renderer(self.classes))
        layer.triggerRepaint()


def tile_class_renderer(classes: Sequence[tuple[str, str]]) -> QgsCategorizedSymbolRenderer:
    """One category per class (value = class name), and a hollow grey one for tiles without a class."""
    categories = []
    for name, colour in classes:
        red, green, blue = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
        symbol = QgsFillSymbol.createSimple({
            "color": f"{red},{green},{blue},{FILL_ALPHA}", "outline_color": f"{red},{green},{blue},255",
            "outline_width": "0.2",
        })
        categories.append(QgsRendererCategory(name, symbol, name))
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
        "such as EuroSAT patches; the outputs CLASS, CONFIDENCE and PROBABILITIES then describe "
        "it (in the grid mode they describe the first classified tile).\n\n"
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
        "classifier: all 8 views)."
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

    #: Post-processors must outlive the algorithm instance until QGIS has loaded the layer.
    _styles: list[TileClassStyle] = []

    def initAlgorithm(self, config=None) -> None:  # noqa: N802 - QGIS API
        number = QgsProcessingParameterNumber
        self.addParameter(QgsProcessingParameterRasterLayer(self.INPUT, "Input raster (multispectral, e.g. Sentinel-2)"))
        self.addParameter(
            QgsProcessingParameterBand(
                self.BANDS, "Bands in the model's order (empty: match band descriptions)",
                parentLayerParameterName=self.INPUT, optional=True, allowMultiple=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterFile(
                self.MODEL, "Model (empty: bundled default land-cover model; a model name or a .safetensors file)",
                optional=True,
                # "All files (*)" keeps model names acceptable: QGIS's default "(*.*)" wants a dot
                fileFilter="SatVision models (*.safetensors);;All files (*)",
            )
        )
        self.addParameter(QgsProcessingParameterExtent(self.EXTENT, "Limit to extent", optional=True))
        self.addParameter(QgsProcessingParameterEnum(self.MODE, "Mode", options=MODE_LABELS, defaultValue=0))
        self.addParameter(number(self.TILE_SIZE, "Tile size in pixels (0: the model's)", INTEGER, 0, minValue=0))
        self.addParameter(
            number(self.STRIDE, "Stride in pixels (0: the tile size, tiles side by side)", INTEGER, 0, minValue=0)
        )
        self.addParameter(
            QgsProcessingParameterVectorDestination(self.OUTPUT, "Classified tiles", type=VECTOR_POLYGON)
        )
        self.addParameter(
            QgsProcessingParameterRasterDestination(
                self.OUTPUT_CLASS_RASTER, "Class raster (one pixel per tile)", optional=True, createByDefault=False
            )
        )
        advanced = [
            number(self.BATCH_SIZE, "Batch size (tiles per forward pass)", INTEGER, 32, minValue=1),
            QgsProcessingParameterEnum(self.DEVICE, "Device", options=DEVICES, defaultValue=0),
            self.test_time_augmentation_parameter(),
            number(self.MIN_VALID_SHARE, "Minimum share of valid pixels for a tile to be classified",
                   DOUBLE, 0.5, minValue=0.0, maxValue=1.0),
        ]
        self.add_advanced_parameters(advanced)
        self.addOutput(QgsProcessingOutputString("CLASS", "Class (whole mode: of the raster; grid: first classified tile)"))
        self.addOutput(QgsProcessingOutputNumber("CONFIDENCE", "Probability of that class"))
        self.addOutput(QgsProcessingOutputString("PROBABILITIES", "Probabilities of every class (JSON)"))
        self.addOutput(QgsProcessingOutputNumber("TILE_COUNT", "Tiles"))
        self.addOutput(QgsProcessingOutputNumber("SKIPPED_TILES", "Tiles skipped (too little valid data)"))
        self.addOutput(QgsProcessingOutputString("DEVICE_USED", "Device that ran the model"))

    def execute(self, parameters, context, feedback) -> dict[str, Any]:
        from ..inference.tiles import classify_tiles

        layer, bounds = self.raster_and_bounds(parameters, context, self.INPUT, self.EXTENT)
        mode = MODES[self.parameterAsEnum(parameters, self.MODE, context)]
        settings = ClassificationSettings(
            mode=mode,
            tile_size=self.parameterAsInt(parameters, self.TILE_SIZE, context) or None,
            stride=self.parameterAsInt(parameters, self.STRIDE, context) or None,
            batch_size=self.parameterAsInt(parameters, self.BATCH_SIZE, context),
            device=DEVICES[self.parameterAsEnum(parameters, self.DEVICE, context)],
            test_time_augmentation=self.test_time_augmentation(parameters, context),
            bounds=bounds,
            band_positions=self.parameterAsInts(parameters, self.BANDS, context) or None,
            min_valid_fraction=self.parameterAsDouble(parameters, self.MIN_VALID_SHARE, context),
        )
        tiles_path = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        class_raster_path = self.parameterAsOutputLayer(parameters, self.OUTPUT_CLASS_RASTER, context) or None
        feedback.pushInfo(f"Mode: {MODE_LABELS[MODES.index(mode)].lower()}")
        result = classify_tiles(
            layer.source(),
            tiles_path,
            model=self.parameterAsFile(parameters, self.MODEL, context) or None,
            class_raster_path=class_raster_path,
            settings=settings,
            user_model_dirs=user_models_folders(),
            progress=lambda fraction: feedback.setProgress(100.0 * fraction),
            is_cancelled=feedback.isCanceled,
            log=feedback.pushInfo,
            warn=feedback.pushWarning,
        )
        if context.willLoadLayerOnCompletion(tiles_path):
            style = TileClassStyle([(item.name, item.colour) for item in sorted(result.card.classes, key=lambda c: c.index)])
            self._styles.append(style)
            context.layerToLoadOnCompletionDetails(tiles_path).setPostProcessor(style)
        first = result.first_tile or {}
        return {
            self.OUTPUT: tiles_path,
            self.OUTPUT_CLASS_RASTER: class_raster_path,
            "CLASS": first.get("class", ""),
            "CONFIDENCE": first.get("confidence"),
            "PROBABILITIES": json.dumps(first.get("probabilities", {})),
            "TILE_COUNT": result.run.tile_count,
            "SKIPPED_TILES": result.run.skipped_tiles,
            "DEVICE_USED": result.run.device,
        }
