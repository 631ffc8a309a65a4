"""What the devices in a region hold and when they were last heard from."""

from __future__ import annotations

from sqlalchemy import select

from app.auth.scope import region_criterion
from app.devices.models import Device
from app.extensions import db
from app.regions.models import Region
from app.users.models import User


def list_devices(actor: User, *, unsent: bool = False, limit: int = 200) -> list[Device]:
    """Devices of users in the actor's region (reviewers, admins) or the actor's own (everyone else)."""
    stmt = select(Device).join(User, Device.user_id == User.id)
    if actor.role in ("reviewer", "admin"):
        stmt = stmt.join(Region, User.region_code == Region.code).where(region_criterion(Region, actor))
    else:
        stmt = stmt.where(Device.user_id == actor.id)
    if unsent:
        stmt = stmt.where(Device.outbox_pending > 0)
    stmt = stmt.order_by(Device.outbox_oldest.is_(None), Device.outbox_oldest, Device.id).limit(limit)
    return list(db.session.scalars(stmt).unique())
