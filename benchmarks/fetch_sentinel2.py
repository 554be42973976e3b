"""Benchmark: the Sentinel-2 fetch against the offline fake Earth Engine server with request latency.

A 100 km² area (10 km x 10 km at 10 m: 1000 x 1000 px, 4 bands) is fetched through the real
earthengine-api client and our download (threads, retries, GeoTIFF writing) with every request
delayed by the latency. Goals: at least 16 requests in flight, and the total time close to
requests x latency / concurrency (the ratio printed; 1.0 is ideal).

    .venv/bin/python benchmarks/fetch_sentinel2.py [--latency 0.2]
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from pathlib import Path

from satvision.earthengine import offline
from satvision.earthengine.connection import ConnectionSettings
from satvision.earthengine.fetch import FetchSettings, fetch_sentinel2
from satvision.earthengine.grid import tile_count
from satvision.earthengine.sentinel2 import Sentinel2Query

#: 10 km x 10 km in UTM 18N on the Virginia coast: 100 km² at 10 m is 1000 x 1000 px
BOUNDS = (420000.0, 4110000.0, 430000.0, 4120000.0)


def run(latency: float, tile_size: int, parallel: int, folder: Path) -> str:
    server = offline.FakeEarthEngineServer(latency_s=latency)
    offline.use_server(server)
    settings = FetchSettings(bounds=BOUNDS, bounds_crs="EPSG:32618", tile_size=tile_size, max_parallel=parallel)
    query = Sentinel2Query("2024-06-01", "2024-06-30")
    started = time.perf_counter()
    result = fetch_sentinel2(query, settings, folder / f"bench_{tile_size}_{parallel}.tif", ConnectionSettings(project="my-project"))
    seconds = time.perf_counter() - started
    requests = tile_count(result.grid, tile_size)
    value_requests = sum(1 for request in server.requests if request["kind"] == "value")
    ideal_download = math.ceil(requests / parallel) * latency
    ideal = ideal_download + value_requests * latency
    return (
        f"fetchsentinel2 100 km² ({result.grid.width} x {result.grid.height} px, 4 bands, {requests} pixel requests of "
        f"{tile_size} px, {latency * 1000:.0f} ms latency, {parallel} parallel): pixels {result.stats.seconds:.2f} s for "
        f"ideal {ideal_download:.2f} s (ratio {result.stats.seconds / ideal_download:.2f}); end to end with connecting "
        f"and the scene query {seconds:.2f} s for ideal {ideal:.2f} s (ratio {seconds / ideal:.2f}); "
        f"max in flight {server.max_in_flight}; {result.stats.bytes / 1e6:.1f} MB"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.2, help="seconds per request (default 0.2)")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, tempfile.TemporaryDirectory() as home:
        credentials = Path(home, ".config", "earthengine", "credentials")
        credentials.parent.mkdir(parents=True)
        credentials.write_text("{}")  # a stand-in for user credentials; nothing is sent offline
        os.environ.update(SATVISION_EE_BACKEND="offline", HOME=home)
        run(0.001, 512, 4, Path(folder))  # warm-up: imports and the client's algorithm list, once per process
        for tile_size, parallel in ((128, 16), (128, 32), (256, 16), (512, 16)):
            print(run(arguments.latency, tile_size, parallel, Path(folder)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
