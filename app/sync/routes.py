"""The phones' channel: push a batch of ops, pull what changed, and the ops still waiting for their case."""

from __future__ import annotations

from flask import current_app, jsonify, request
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from app.auth.tokens import auth_required, current_user, token_claims
from app.errors import PayloadTooLarge
from app.extensions import limiter
from app.ops.metrics import count_sync_results
from app.ops.security import device_key, limit, user_key
from app.sync import changes, services

blp = Blueprint("sync", __name__, description="Offline sync (protocol v1, see DESIGN.md)")


class ChangesQuery(Schema):
    cursor = fields.String(load_default=None, validate=validate.Length(max=20),  # else invalid_cursor
                           metadata={"description": "the `cursor` of the previous answer", "pattern": "^[0-9]{0,18}$"})
    limit = fields.Integer(load_default=200, validate=validate.Range(1, 1000))


class OrphansQuery(Schema):
    older_than_hours = fields.Float(load_default=None, allow_nan=False, validate=validate.Range(0, 24 * 365))
    limit = fields.Integer(load_default=200, validate=validate.Range(1, 1000))


_ENVELOPE_DOC = {
    "required": True,
    "content": {"application/json": {"schema": {
        "type": "object", "required": ["device_id", "ops"], "additionalProperties": False,
        "properties": {
            "device_id": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{8,64}$",
                          "description": "the device the access token was issued to"},
            "client_time": {"type": "string", "format": "date-time", "nullable": True,
                            "pattern": r"^(19[0-9]{2}|2[0-9]{3})-"},
            "outbox": {"type": "object", "nullable": True, "additionalProperties": False, "properties": {
                "pending": {"type": "integer", "minimum": 0, "maximum": 10_000_000},
                "oldest": {"type": "string", "format": "date-time", "nullable": True,
                           "pattern": r"^(19[0-9]{2}|2[0-9]{3})-"}}},
            # Each op is judged alone: one that is not an object, or not a valid op, gets its own
            # "rejected" result in a 200 and never fails the batch (DESIGN.md), so any value is allowed here.
            "ops": {"type": "array", "items": {}, "description": "report.create, case.update, case.note, "
                                                                 "case.transition (see DESIGN.md)"}}}}},
}
_RESULTS_DOC = {"200": {"description": "one result per op, in order", "content": {"application/json": {"schema": {
    "type": "object", "properties": {
        "server_time": {"type": "string"}, "clock_skew_s": {"type": "number", "nullable": True},
        "results": {"type": "array", "items": {"type": "object", "properties": {
            "op_id": {"type": "string", "nullable": True},
            "status": {"type": "string",
                       "enum": ["applied", "duplicate", "conflict", "rejected", "held", "retry"]}}}}}}}}}}


@blp.route("/sync", methods=["POST"])
@limiter.limit(limit("SYNC_RATE_LIMIT_DEVICE"), key_func=device_key)
@limiter.limit(limit("SYNC_RATE_LIMIT_USER"), key_func=user_key)
@blp.doc(requestBody=_ENVELOPE_DOC, responses=_RESULTS_DOC)
@auth_required()
def push():
    """Apply a batch of ops exactly once; one result per op, HTTP 200 whenever the envelope was readable."""
    max_bytes = int(current_app.config["SYNC_MAX_BYTES"])
    if request.content_length is not None and request.content_length > max_bytes:
        raise PayloadTooLarge()
    raw = request.stream.read(max_bytes + 1)
    answer = services.sync(current_user, token_claims().get("dev"), raw)
    count_sync_results(answer["results"])
    return jsonify(answer)


@blp.route("/sync/changes", methods=["GET"])
@blp.arguments(ChangesQuery, location="query")
@blp.doc(responses={"200": {"description": "changed cases and tombstones, in change order"}})
@auth_required()
def pull(args):
    """The cases in my working set changed since ``cursor`` (tombstones for those that left it)."""
    cursor = changes.parse_cursor(args["cursor"])
    return jsonify(changes.changes_since(current_user, cursor, args["limit"]))


@blp.route("/sync/orphans", methods=["GET"])
@blp.arguments(OrphansQuery, location="query")
@blp.doc(responses={"200": {"description": "held ops waiting too long for their case"}})
@auth_required("reviewer", "admin")
def orphans(args):
    """Ops held for a case that never arrived (older than HELD_ORPHAN_HOURS), from phones in my region."""
    return jsonify(changes.orphans(current_user, args["older_than_hours"], args["limit"]))
