"""One UTM-zone helper for every job (model grids, Earth Engine fetch, synthetic imagery)."""

from __future__ import annotations

import pytest
from rasterio.crs import CRS

from satvision.core.utm import is_utm, utm_crs, utm_zone


@pytest.mark.parametrize("longitude, zone", [(-180.0, 1), (-177.0, 1), (-174.0, 2), (-75.9, 18), (0.0, 31), (3.0, 31),
                                             (151.2, 56), (179.9, 60), (180.0, 1), (190.0, 2), (-190.0, 59), (359.0, 30),
                                             (540.0, 1)])
def test_every_longitude_has_its_zone_wrapped_into_the_first_turn(longitude, zone):
    assert utm_zone(longitude) == zone


def test_the_hemisphere_picks_the_epsg_code():
    assert utm_crs(-75.9, 37.2) == CRS.from_epsg(32618)
    assert utm_crs(151.2, -33.9) == CRS.from_epsg(32756)
    assert utm_crs(190.0, 10.0) == CRS.from_epsg(32602)  # 190° E is 170° W


def test_is_utm():
    assert is_utm(CRS.from_epsg(32618)) and is_utm(CRS.from_epsg(32760))
    assert not is_utm(CRS.from_epsg(4326)) and not is_utm(CRS.from_epsg(3857))
