"""Open311 GeoReport v2 (``/open311/v2``): services.json, requests.json, requests/<id>.json.

Authenticated with the API's bearer token, in the caller's scope. Errors keep Gridcase's problem JSON
(with its stable ``code`` and ``detail``) rather than the spec's ``[{code, description}]`` list: one
error shape for every client.
"""

from __future__ import annotations

from flask import jsonify, request
from flask_smorest import Blueprint
from marshmallow import ValidationError

from app.auth.tokens import auth_required, current_session, current_user
from app.errors import DomainError, ValidationFailed, _flatten
from app.extensions import db
from app.open311 import services
from app.open311.schemas import RequestIn, RequestsQuery, ServicesQuery

blp = Blueprint("open311", __name__, description="Open311 GeoReport v2: categories as services, cases as "
                                                 "service requests")


@blp.route("/services.json", methods=["GET"])
@blp.arguments(ServicesQuery, location="query")
@blp.doc(responses={"200": {"description": "[{service_code, service_name, description, metadata, type, "
                                           "keywords, group}]"}})
@auth_required()
def service_list(args):
    """The categories as Open311 services."""
    return jsonify(services.list_services(current_user, args["jurisdiction_id"]))


@blp.route("/requests.json", methods=["GET"])
@blp.arguments(RequestsQuery, location="query")
@blp.doc(responses={"200": {"description": "service requests in your scope, newest first, at most 1000"}})
@auth_required()
def request_list(args):
    """Service requests in my scope: by id (comma list), or by service code, status and period."""
    return jsonify(services.list_requests(current_user, args))


def _body() -> dict:
    """The fields of a POST: form-encoded as the spec has it (or multipart, or JSON); the published Swagger
    puts them in the query string, so that is read too, the body winning."""
    data = request.args.to_dict(flat=True)
    if request.is_json:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise DomainError("invalid_json")
        data.update(body)
    else:
        data.update(request.form.to_dict(flat=True))
    return data


@blp.route("/requests.json", methods=["POST"])
@blp.doc(requestBody={"required": True, "content": {"application/x-www-form-urlencoded": {"schema": RequestIn},
                                                    "application/json": {"schema": RequestIn}}},
         responses={"200": {"description": "[{service_request_id, service_notice}]"}})
@auth_required()
def request_create():
    """Report a matter (form-encoded or JSON): service_code, lat and long (or address_id, a micro-grid
    code), description, media_url. The case is created exactly as a phone's report.create."""
    try:
        data = RequestIn().load(_body())
    except ValidationError as exc:
        raise ValidationFailed(errors=_flatten(exc.messages)) from exc
    session = current_session()
    answer = services.create_request(current_user, session.device_id if session else None, data)
    db.session.commit()
    return jsonify(answer)  # 200, not 201: what the published Swagger (and so the clients) expect


@blp.route("/requests/<request_id>.json", methods=["GET"])
@blp.doc(responses={"200": {"description": "a one-element list"}})
@auth_required()
def request_one(request_id: str):
    """One service request, as a one-element list."""
    return jsonify(services.get_request(current_user, request_id))
