from marshmallow import Schema, fields, validate


class RegionOut(Schema):
    code = fields.String()
    name = fields.String()
    level = fields.String()
    parent = fields.String(allow_none=True, attribute="parent_code")
    bbox = fields.Method("_bbox")
    has_geometry = fields.Method("_has_geometry")

    def _bbox(self, region):
        if region.min_lon is None:
            return None
        return [region.min_lon, region.min_lat, region.max_lon, region.max_lat]

    def _has_geometry(self, region):
        return region.geometry is not None


class LocateQuery(Schema):
    lat = fields.Float(required=True, allow_nan=False, validate=validate.Range(-90, 90))
    lon = fields.Float(required=True, allow_nan=False, validate=validate.Range(-180, 180))
    crs = fields.String(load_default="wgs84", validate=validate.OneOf(["wgs84", "gcj02", "bd09"]))


class GeoJsonQuery(Schema):
    level = fields.String(load_default=None, validate=validate.OneOf(
        ["city", "township", "village", "grid", "micro_grid"]))
