"""How the rasters the algorithms write look when QGIS loads them, and where they sit in the layer tree.

Without a style QGIS shows a probability raster as an opaque grey image and a 0/1 mask as a
black-and-white one, both covering the polygons drawn from them. Here each raster gets a
renderer (transparent where there is nothing to see, nodata always transparent) and a
:class:`LayerStack` keeps the outputs of one run in a fixed order: polygons on top, rasters under.

QGIS 3.22–3.30 adds each loaded output at the top of the tree and then calls its post-processor,
so the stack moves the tree nodes there; QGIS 3.32+ calls the post-processor before the layer
is in the tree and orders the outputs by ``LayerDetails.layerSortKey``, which :func:`attach` sets.
"""

from __future__ import annotations

from typing import Callable, Sequence

from qgis.core import (
    Qgis,
    QgsColorRampShader,
    QgsEditorWidgetSetup,
    QgsLayerTreeGroup,
    QgsMapLayer,
    QgsPalettedRasterRenderer,
    QgsProcessingContext,
    QgsProcessingLayerPostProcessorInterface,
    QgsProject,
    QgsRasterLayer,
    QgsRasterRenderer,
    QgsRasterShader,
    QgsSingleBandPseudoColorRenderer,
)
from qgis.PyQt.QtGui import QColor

#: The water blue of the polygon style (RGB).
WATER_RGB = (31, 120, 180)
PROBABILITY_OPACITY = 0.8
MASK_OPACITY = 0.6
CLASS_RASTER_OPACITY = 0.7

#: Linear interpolation between ramp items: ``Qgis.ShaderInterpolationMethod`` from 3.30, the old enum before.
INTERPOLATED = (Qgis.ShaderInterpolationMethod.Linear if hasattr(Qgis, "ShaderInterpolationMethod")
                else QgsColorRampShader.Type.Interpolated)

#: Post-processors must outlive the algorithm instance until QGIS has loaded the layer.
_KEEP_ALIVE: list[QgsProcessingLayerPostProcessorInterface] = []


def probability_renderer(layer: QgsRasterLayer) -> QgsSingleBandPseudoColorRenderer:
    """Band 1 from transparent at 0 to opaque water blue at 1 (nodata stays transparent)."""
    shader_function = QgsColorRampShader(0.0, 1.0)
    shader_function.setColorRampType(INTERPOLATED)
    shader_function.setColorRampItemList([
        QgsColorRampShader.ColorRampItem(0.0, QColor(*WATER_RGB, 0), "0 (no water)"),
        QgsColorRampShader.ColorRampItem(0.5, QColor(*WATER_RGB, 128), "0.5"),
        QgsColorRampShader.ColorRampItem(1.0, QColor(*WATER_RGB, 255), "1 (water)"),
    ])
    shader = QgsRasterShader(0.0, 1.0)
    shader.setRasterShaderFunction(shader_function)
    renderer = QgsSingleBandPseudoColorRenderer(layer.dataProvider(), 1, shader)
    renderer.setClassificationMin(0.0)
    renderer.setClassificationMax(1.0)
    return renderer


def paletted_renderer(layer: QgsRasterLayer, classes: Sequence[tuple[int, QColor, str]]) -> QgsPalettedRasterRenderer:
    """Band 1 as classes: ``(value, colour, label)``; values not listed (and nodata) are not drawn."""
    items = [QgsPalettedRasterRenderer.Class(value, colour, label) for value, colour, label in classes]
    return QgsPalettedRasterRenderer(layer.dataProvider(), 1, items)


def mask_renderer(layer: QgsRasterLayer) -> QgsPalettedRasterRenderer:
    """1 water blue, 0 transparent."""
    return paletted_renderer(layer, [(0, QColor(0, 0, 0, 0), "Land"), (1, QColor(*WATER_RGB, 255), "Water")])


def class_raster_renderer(layer: QgsRasterLayer, classes: Sequence[tuple[int, str, str]]) -> QgsPalettedRasterRenderer:
    """One colour per class index, labelled in words: ``classes`` is ``(index, "#rrggbb", label)``."""
    return paletted_renderer(layer, [(index, QColor(colour), label) for index, colour, label in classes])


def show_decimals(layer: QgsMapLayer, decimals: dict[str, int]) -> None:
    """Show the real fields ``decimals`` names with that many decimals in the attribute table and
    identify results: GeoPackage keeps no field precision, so QGIS would show every double digit."""
    fields = layer.fields()
    for name, places in decimals.items():
        index = fields.indexFromName(name)
        if index < 0:
            continue
        layer.setEditorWidgetSetup(index, QgsEditorWidgetSetup("Range", {
            "Precision": places, "Step": 10.0 ** -places, "Style": "SpinBox", "AllowNull": True,
            "Min": -1.0e15, "Max": 1.0e15,
        }))


class LayerStack:
    """The loaded outputs of one algorithm run, kept in a fixed order in the layer tree.

    ``rank``: higher ranks sit above lower ones (polygons 3, mask 2, probability 1).
    """

    def __init__(self) -> None:
        self.ranks: dict[str, int] = {}  # layer id -> rank

    def add(self, layer: QgsMapLayer, rank: int) -> None:
        self.ranks[layer.id()] = rank
        self.arrange(layer.project() or QgsProject.instance())

    def arrange(self, project: QgsProject) -> None:
        """Reorder the run's layers that share a tree group, top to bottom by rank, where the
        topmost of them is now. Nothing happens for layers not (yet) in the tree."""
        root = project.layerTreeRoot()
        nodes = [root.findLayer(layer_id) for layer_id in self.ranks]
        nodes = [node for node in nodes if node is not None]
        if len(nodes) < 2:
            return
        parent = nodes[0].parent()
        if not isinstance(parent, QgsLayerTreeGroup) or any(node.parent() is not parent for node in nodes):
            return  # the user (or a results group setting) put them apart: leave them
        children = parent.children()
        start = min(children.index(node) for node in nodes)
        wanted = sorted(nodes, key=lambda node: -self.ranks[node.layerId()])
        if [children[start + offset] for offset in range(len(wanted))] == wanted:
            return
        for offset, node in enumerate(wanted):
            clone = node.clone()
            parent.insertChildNode(start + offset, clone)
            parent.removeChildNode(node)


class StylePostProcessor(QgsProcessingLayerPostProcessorInterface):
    """Gives a loaded output its style and opacity, then its place in the run's :class:`LayerStack`."""

    def __init__(self, style: Callable[[QgsMapLayer], None], stack: LayerStack, rank: int) -> None:
        super().__init__()
        self.style, self.stack, self.rank = style, stack, rank

    def postProcessLayer(self, layer, context, feedback):  # noqa: N802 - QGIS API
        self.style(layer)
        layer.triggerRepaint()
        self.stack.add(layer, self.rank)


def raster_style(renderer: Callable[[QgsRasterLayer], QgsRasterRenderer], opacity: float) -> Callable[[QgsMapLayer], None]:
    """A style function for :class:`StylePostProcessor`: the renderer ``renderer(layer)`` at ``opacity``."""

    def apply(layer: QgsMapLayer) -> None:
        if not isinstance(layer, QgsRasterLayer) or not layer.isValid():
            return
        made = renderer(layer)
        made.setOpacity(opacity)
        layer.setRenderer(made)

    return apply


def attach(context: QgsProcessingContext, path: str | None, style: Callable[[QgsMapLayer], None],
           stack: LayerStack, rank: int) -> None:
    """Style the output ``path`` when QGIS loads it (if it does) and put it at ``rank`` in ``stack``."""
    if not path or not context.willLoadLayerOnCompletion(path):
        return
    processor = StylePostProcessor(style, stack, rank)
    _KEEP_ALIVE.append(processor)
    details = context.layerToLoadOnCompletionDetails(path)
    details.setPostProcessor(processor)
    if hasattr(details, "layerSortKey"):  # QGIS 3.32+: greater keys are placed above lesser ones
        details.layerSortKey = rank
