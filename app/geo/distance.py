"""Distances on the WGS-84 sphere, for the checks that compare places (duplicates, photo positions)."""

from __future__ import annotations

import math

EARTH_RADIUS_M = 6_371_008.8  # the mean radius (IUGG): within 0.5 % of the ellipsoid at China's latitudes


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres between two points given in degrees."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))
