"""Browsing the caller's part of the hierarchy, locating a point, polygons for offline use."""

from __future__ import annotations

import hashlib
import json

from flask import Response, request
from flask_smorest import Blueprint
from sqlalchemy import func, select

from app.auth.scope import require_region_visible
from app.auth.tokens import auth_required, current_user
from app.errors import NotFound
from app.extensions import db
from app.geo.crs import to_wgs84
from app.regions import services
from app.regions.models import Region
from app.regions.schemas import GeoJsonQuery, LocateQuery, RegionOut

blp = Blueprint("regions", __name__, description="The region hierarchy (市-镇街-村社-网格-微网格)")


def _visible(code: str) -> Region:
    return require_region_visible(db.session.get(Region, code), current_user)


@blp.route("/regions", methods=["GET"])
@blp.response(200, RegionOut)
@auth_required()
def my_region():
    """The root of my part of the hierarchy (my own region)."""
    return current_user.region


@blp.route("/regions/locate", methods=["GET"])
@blp.arguments(LocateQuery, location="query")
@blp.response(200, RegionOut)
@auth_required()
def locate(args):
    """The micro-grid holding a point (inside my scope)."""
    lat, lon = to_wgs84(args["lat"], args["lon"], args["crs"])
    region = services.locate(lat, lon)
    if region is None:
        raise NotFound("no_micro_grid")
    return require_region_visible(region, current_user)


@blp.route("/regions/<code>", methods=["GET"])
@blp.response(200, RegionOut)
@auth_required()
def get_region(code: str):
    """One region of my part of the hierarchy."""
    return _visible(code)


@blp.route("/regions/<code>/children", methods=["GET"])
@blp.response(200, RegionOut(many=True))
@auth_required()
def children(code: str):
    """The regions directly below one of mine."""
    return services.children(_visible(code))


@blp.route("/regions/<code>/geojson", methods=["GET"])
@blp.arguments(GeoJsonQuery, location="query")
@blp.response(200, description="A GeoJSON FeatureCollection of the subtree's regions")
@auth_required()
def geojson(args, code: str):
    """The polygons of a subtree as GeoJSON (the PWA caches them for offline lookup). Honours ETags."""
    root = _visible(code)
    key = getattr(Region, f"{root.level}_code")
    stmt = select(func.count(Region.code), func.max(Region.updated_at)).where(key == root.code)
    if args["level"]:
        stmt = stmt.where(Region.level == args["level"])
    count, newest = db.session.execute(stmt).one()
    etag = hashlib.sha256(f"{root.code}|{args['level']}|{count}|{newest}".encode()).hexdigest()[:32]
    if request.if_none_match.contains(etag):
        return Response(status=304, headers={"ETag": f'"{etag}"'})
    body = json.dumps(services.feature_collection(services.subtree(root, args["level"])),
                      ensure_ascii=False, separators=(",", ":"))
    return Response(body, mimetype="application/geo+json",
                    headers={"ETag": f'"{etag}"', "Cache-Control": "private, no-cache"})
