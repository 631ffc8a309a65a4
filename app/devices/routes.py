"""Phones in scope, and revoking a lost one."""

from __future__ import annotations

from flask_smorest import Blueprint

from app.auth import services as auth_services
from app.auth.tokens import auth_required, current_user
from app.devices import services
from app.devices.schemas import DeviceOut, DeviceQuery

blp = Blueprint("devices", __name__, description="Phones and what they still hold")


@blp.route("/devices", methods=["GET"])
@blp.arguments(DeviceQuery, location="query")
@blp.response(200, DeviceOut(many=True))
@auth_required()
def list_devices(args):
    """Phones in my scope: user, last contact, reported outbox and its oldest unsent item."""
    return services.list_devices(current_user, unsent=args["unsent"], limit=args["limit"])


@blp.route("/devices/<device_id>/revoke", methods=["POST"])
@blp.response(200, DeviceOut)
@auth_required("admin", "reviewer")
def revoke(device_id: str):
    """Revoke a lost phone for good: its tokens stop working and it may not log in again."""
    return auth_services.revoke_device(device_id, current_user)
