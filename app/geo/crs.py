"""Convert between the three coordinate systems Chinese maps use: WGS-84, GCJ-02 and BD-09.

Phones report WGS-84 (GPS); AMap, Tencent and Google China draw in GCJ-02 (the state-mandated "Mars"
offset of a few hundred metres); Baidu draws in BD-09, a further offset on top of GCJ-02. Gridcase
stores WGS-84 only, so everything that arrives in another system goes through ``to_wgs84`` first.

The forward offsets are the public formulas every Chinese map library shares (eviltransform, gcoord,
coordtransform). They have no closed-form inverse, so the inverses here iterate the forward transform
until it reproduces the input, which makes a round trip exact to well under a millimetre instead of
the one or two metres the usual one-step inverse leaves.

All functions take and return ``(lat, lon)`` in decimal degrees, latitude first.
"""

from __future__ import annotations

import math
from typing import Final, Literal

__all__ = [
    "CRS",
    "SUPPORTED_CRS",
    "bd09_to_gcj02",
    "bd09_to_wgs84",
    "gcj02_to_bd09",
    "gcj02_to_wgs84",
    "out_of_china",
    "to_wgs84",
    "wgs84_to_bd09",
    "wgs84_to_gcj02",
]

CRS = Literal["wgs84", "gcj02", "bd09"]
SUPPORTED_CRS: Final[tuple[str, ...]] = ("wgs84", "gcj02", "bd09")

# GCJ-02 is computed on the Krasovsky 1940 ellipsoid, not on WGS-84's; these are its constants.
_A: Final = 6378245.0
_EE: Final = 0.00669342162296594323

# Baidu's constant: its perturbations are periodic with a period of 3000 per 180 degrees.
_X_PI: Final = math.pi * 3000.0 / 180.0

# Stop iterating once the forward transform of the estimate hits the input to 1e-9 degrees (~0.1 mm).
# The forward offsets change by at most a few parts in a hundred per degree, so each step gains
# about two decimal digits and 3-5 steps suffice; the cap only guards the box edge (see below).
_TOLERANCE_DEG: Final = 1e-9
_MAX_ITERATIONS: Final = 30

_PI: Final = math.pi
_sin = math.sin
_cos = math.cos
_sqrt = math.sqrt


def out_of_china(lat: float, lon: float) -> bool:
    """Tell whether a point lies outside the rough mainland box where the GCJ-02 offset applies.

    Outside it GCJ-02 equals WGS-84. The box is the one all public implementations share, so a
    point near a border converts the same way here as in the map SDKs that produced it.
    """
    return not (72.004 <= lon <= 137.8347 and 0.8293 <= lat <= 55.8271)


def _gcj02_offset(lat: float, lon: float) -> tuple[float, float]:
    """Return the GCJ-02 offset (dlat, dlon) in degrees to add to a WGS-84 point inside the box."""
    x = lon - 105.0
    y = lat - 35.0
    x_pi = x * _PI
    # The term shared by both axes (the published transformLat / transformLon), in metres on the ellipsoid.
    shared = (20.0 * _sin(6.0 * x_pi) + 20.0 * _sin(2.0 * x_pi)) * 2.0 / 3.0
    sqrt_abs_x = _sqrt(abs(x))
    north = (
        -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * sqrt_abs_x
        + shared
        + (20.0 * _sin(y * _PI) + 40.0 * _sin(y / 3.0 * _PI)) * 2.0 / 3.0
        + (160.0 * _sin(y / 12.0 * _PI) + 320.0 * _sin(y * _PI / 30.0)) * 2.0 / 3.0
    )
    east = (
        300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * sqrt_abs_x
        + shared
        + (20.0 * _sin(x_pi) + 40.0 * _sin(x / 3.0 * _PI)) * 2.0 / 3.0
        + (150.0 * _sin(x / 12.0 * _PI) + 300.0 * _sin(x / 30.0 * _PI)) * 2.0 / 3.0
    )
    # Metres to degrees on the Krasovsky ellipsoid: meridian radius for latitude, parallel radius
    # for longitude.
    rad_lat = lat / 180.0 * _PI
    s = _sin(rad_lat)
    magic = 1.0 - _EE * s * s
    sqrt_magic = _sqrt(magic)
    dlat = (north * 180.0) / ((_A * (1.0 - _EE)) / (magic * sqrt_magic) * _PI)
    dlon = (east * 180.0) / (_A / sqrt_magic * _cos(rad_lat) * _PI)
    return dlat, dlon


def wgs84_to_gcj02(lat: float, lon: float) -> tuple[float, float]:
    """Shift a GPS (WGS-84) point onto AMap/Tencent maps; identity outside mainland China."""
    if out_of_china(lat, lon):
        return lat, lon
    dlat, dlon = _gcj02_offset(lat, lon)
    return lat + dlat, lon + dlon


def gcj02_to_wgs84(lat: float, lon: float) -> tuple[float, float]:
    """Undo the GCJ-02 offset exactly (well under 0.5 m), so points picked on AMap land where GPS says.

    Fixed-point iteration on the forward transform: correct the estimate by whatever the forward
    transform of it misses the input by. Starting from the input itself, the first step equals the
    usual one-step inverse (1-2 m off); the following steps remove that error.
    """
    if out_of_china(lat, lon):
        return lat, lon
    wlat, wlon = lat, lon
    for _ in range(_MAX_ITERATIONS):
        glat, glon = wgs84_to_gcj02(wlat, wlon)
        elat = lat - glat
        elon = lon - glon
        if abs(elat) < _TOLERANCE_DEG and abs(elon) < _TOLERANCE_DEG:
            break
        wlat += elat
        wlon += elon
    # Within ~500 m of the box edge the forward transform jumps, and no exact inverse may exist;
    # the cap then returns the last estimate, which is still within the offset of the truth.
    return wlat, wlon


def gcj02_to_bd09(lat: float, lon: float) -> tuple[float, float]:
    """Shift a GCJ-02 point onto Baidu maps (BD-09), using Baidu's public formula.

    Applied everywhere, as gcoord and coordtransform do: BD-09 is defined as GCJ-02 plus this
    offset, and outside China GCJ-02 already equals WGS-84.
    """
    z = math.hypot(lon, lat) + 0.00002 * _sin(lat * _X_PI)
    theta = math.atan2(lat, lon) + 0.000003 * _cos(lon * _X_PI)
    return z * _sin(theta) + 0.006, z * _cos(theta) + 0.0065


def _bd09_to_gcj02_approx(lat: float, lon: float) -> tuple[float, float]:
    """Baidu's published one-step inverse; up to about a metre off, used only as a starting point."""
    x = lon - 0.0065
    y = lat - 0.006
    z = math.hypot(x, y) - 0.00002 * _sin(y * _X_PI)
    theta = math.atan2(y, x) - 0.000003 * _cos(x * _X_PI)
    return z * _sin(theta), z * _cos(theta)


def bd09_to_gcj02(lat: float, lon: float) -> tuple[float, float]:
    """Undo the BD-09 offset exactly, so points picked on Baidu maps survive a round trip.

    Starts from Baidu's one-step inverse and refines it against ``gcj02_to_bd09`` the same way
    ``gcj02_to_wgs84`` refines against the GCJ-02 offset.
    """
    glat, glon = _bd09_to_gcj02_approx(lat, lon)
    for _ in range(_MAX_ITERATIONS):
        blat, blon = gcj02_to_bd09(glat, glon)
        elat = lat - blat
        elon = lon - blon
        if abs(elat) < _TOLERANCE_DEG and abs(elon) < _TOLERANCE_DEG:
            break
        glat += elat
        glon += elon
    return glat, glon


def wgs84_to_bd09(lat: float, lon: float) -> tuple[float, float]:
    """Shift a GPS (WGS-84) point onto Baidu maps, through GCJ-02 as Baidu defines it."""
    return gcj02_to_bd09(*wgs84_to_gcj02(lat, lon))


def bd09_to_wgs84(lat: float, lon: float) -> tuple[float, float]:
    """Bring a point picked on Baidu maps back to WGS-84, exactly, through GCJ-02."""
    return gcj02_to_wgs84(*bd09_to_gcj02(lat, lon))


_TO_WGS84 = {
    "gcj02": gcj02_to_wgs84,
    "bd09": bd09_to_wgs84,
}


def to_wgs84(lat: float, lon: float, crs: str) -> tuple[float, float]:
    """Normalise a client-reported point to WGS-84, the only system Gridcase stores.

    ``crs`` is ``"wgs84"``, ``"gcj02"`` or ``"bd09"`` (exact, lower case, as the API documents it).
    Raises ``ValueError`` for any other value, so a typo cannot silently store a point 500 m off.
    """
    if crs == "wgs84":
        return float(lat), float(lon)
    convert = _TO_WGS84.get(crs)
    if convert is None:
        raise ValueError(f"unknown coordinate system {crs!r}; expected one of {', '.join(SUPPORTED_CRS)}")
    return convert(lat, lon)
