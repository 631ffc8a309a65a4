"""Security headers for every answer, and rate limits keyed by user and device.

The PWA's Content-Security-Policy allows only this origin's scripts (no inline script), photos from
here and ``blob:``/``data:`` (previews made on the phone), an optional map tile origin, and no framing.
Swagger UI at /api/docs is served from here too (static/pwa/vendor/swagger-ui/: no CDN, so it opens in China);
its page has one inline script, hence its own policy. HSTS is sent when the request came in
over TLS (behind a proxy: set GRIDCASE_PROXY_FIX_X_PROTO=1 so the scheme is trusted).
"""

from __future__ import annotations

from flask import Flask, current_app, g, request
from flask_jwt_extended import decode_token
from flask_jwt_extended.exceptions import JWTExtendedException
from jwt.exceptions import PyJWTError
from werkzeug.middleware.proxy_fix import ProxyFix


def _csp(app: Flask) -> str:
    tiles = app.config.get("MAP_TILE_ORIGIN") or ""
    return ("default-src 'self'; script-src 'self'; worker-src 'self' blob:; "
            "style-src 'self' 'unsafe-inline'; "  # Leaflet positions tiles and markers with style attributes
            f"img-src 'self' data: blob: {tiles}".rstrip() + "; connect-src 'self'; font-src 'self'; "
            "manifest-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'")


DOCS_CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; connect-src 'self'; object-src 'none'; frame-ancestors 'none'")


def register(app: Flask) -> None:
    hops = {k: int(app.config.get(f"PROXY_FIX_X_{k.upper()}", 0) or 0) for k in ("for", "proto", "host", "prefix")}
    if any(hops.values()):
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops["for"], x_proto=hops["proto"], x_host=hops["host"],
                                x_prefix=hops["prefix"])
    csp = _csp(app)

    @app.after_request
    def _headers(response):
        h = response.headers
        h.setdefault("X-Content-Type-Options", "nosniff")
        h.setdefault("Referrer-Policy", "no-referrer")
        h.setdefault("X-Frame-Options", "DENY")
        h.setdefault("Permissions-Policy", "camera=(self), geolocation=(self), microphone=()")
        h.setdefault("Content-Security-Policy", DOCS_CSP if request.path.startswith("/api/docs") else csp)
        if request.is_secure:
            h.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        return response


def _token_claims() -> dict | None:
    """The request's access-token claims for the rate-limit keys, decoded once per request (the user and the
    device limits both ask). Signature and expiry only, no database: the counters are written before the
    view runs, on a connection of their own, and a session look-up here would already hold SQLite's write
    lock on the request's connection. The view's own check (auth_required) verifies the session and user."""
    if "limit_claims" in g:
        return g.limit_claims
    claims = None
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme == "Bearer" and token:
        try:
            claims = decode_token(token.strip())
        except (JWTExtendedException, PyJWTError):
            claims = None
        except Exception:  # the view's own auth check reports token problems; the limit just falls back
            claims = None
        if claims and claims.get("type") != "access":
            claims = None
    g.limit_claims = claims
    return claims


def user_key() -> str:
    """Rate-limit key: the token's user, or the address for unauthenticated calls."""
    claims = _token_claims()
    return f"user:{claims['sub']}" if claims else f"ip:{request.remote_addr}"


def device_key() -> str:
    claims = _token_claims()
    return f"device:{claims.get('dev')}" if claims and claims.get("dev") else f"ip:{request.remote_addr}"


def limit(name: str):
    return lambda: current_app.config[name]
