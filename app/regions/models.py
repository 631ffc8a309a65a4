"""The five-level command hierarchy: city → township → village → grid → micro_grid."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.database import UTCDateTime, utcnow
from app.extensions import db

LEVELS = ("city", "township", "village", "grid", "micro_grid")
LEVEL_NAMES_ZH = {"city": "市", "township": "镇街", "village": "村社", "grid": "网格", "micro_grid": "微网格"}


def level_rank(level: str) -> int:
    return LEVELS.index(level)


class Region(db.Model):
    __tablename__ = "regions"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    level: Mapped[str] = mapped_column(String(16), index=True)
    parent_code: Mapped[str | None] = mapped_column(ForeignKey("regions.code"), index=True)
    # The code of each ancestor (and of itself) by level: a subtree is "<level>_code = X", one index.
    city_code: Mapped[str | None] = mapped_column(String(32), index=True)
    township_code: Mapped[str | None] = mapped_column(String(32), index=True)
    village_code: Mapped[str | None] = mapped_column(String(32), index=True)
    grid_code: Mapped[str | None] = mapped_column(String(32), index=True)
    micro_grid_code: Mapped[str | None] = mapped_column(String(32))
    # GeoJSON geometry (Polygon or MultiPolygon), WGS-84, as imported.
    geometry: Mapped[str | None] = mapped_column(Text)
    min_lon: Mapped[float | None]
    min_lat: Mapped[float | None]
    max_lon: Mapped[float | None]
    max_lat: Mapped[float | None]
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    __table_args__ = (Index("ix_regions_level_updated", "level", "updated_at"),)

    def level_codes(self) -> dict[str, str | None]:
        return {f"{level}_code": getattr(self, f"{level}_code") for level in LEVELS}

    def to_dict(self) -> dict:
        return {"code": self.code, "name": self.name, "level": self.level, "parent": self.parent_code,
                "bbox": [self.min_lon, self.min_lat, self.max_lon, self.max_lat] if self.min_lon is not None
                else None}
