"""The API docs at /api/docs open with no request leaving the host (Swagger UI is vendored: a CDN may not
open in China), in a real Chromium against the real gunicorn."""

from __future__ import annotations

from urllib.parse import urlsplit


def test_the_api_docs_load_from_the_app_alone(phone, live_server):
    page = phone.new_page()
    host = urlsplit(live_server.url).netloc
    requested = []
    page.on("request", lambda r: requested.append(r.url))
    failed = []
    page.on("requestfailed", lambda r: failed.append(r.url))
    page.goto("/api/docs")
    # the operations of the spec are drawn: Swagger UI ran and fetched openapi.json
    page.locator(".opblock-summary-path", has_text="/api/v1/sync").first.wait_for()
    assert page.locator(".opblock").count() > 20
    foreign = [u for u in requested if not u.startswith(("data:", "blob:")) and urlsplit(u).netloc != host]
    assert not foreign, foreign
    assert not failed, failed
    assert any(u.endswith("/vendor/swagger-ui/swagger-ui-bundle.js") for u in requested)
