"""Configuration: typed defaults here, overridden by ``GRIDCASE_*`` environment variables.

``GRIDCASE_DATABASE_URL`` becomes ``DATABASE_URL`` and so on (Flask's ``from_prefixed_env``, which parses
numbers and booleans as JSON). Every limit carries a line saying why it is what it is.
"""

from __future__ import annotations

from datetime import timedelta


class Config:
    # Empty means "a SQLite file in the instance folder"; resolved in create_app().
    DATABASE_URL = ""
    SECRET_KEY = ""
    JWT_SECRET_KEY = ""
    # Empty means "<instance folder>/media".
    MEDIA_DIR = ""
    MEDIA_STORAGE = "local"  # or "s3"
    S3_BUCKET = ""
    S3_ENDPOINT_URL = ""
    S3_REGION = ""
    S3_ACCESS_KEY_ID = ""
    S3_SECRET_ACCESS_KEY = ""
    S3_PREFIX = ""

    # Phones sync in the field over weak networks: a short access token limits what a stolen one is
    # worth, a long refresh token lets a grid worker stay offline for weeks without logging in again.
    ACCESS_TOKEN_MINUTES = 15
    REFRESH_TOKEN_DAYS = 30

    # Argon2id cost (RFC 9106 option 2); each stored hash keeps its own, so these only affect new hashes.
    ARGON2_TIME_COST = 3
    ARGON2_MEMORY_KIB = 64 * 1024

    # Sync and uploads per device and per user: far above what a phone emptying a week's outbox sends
    # (batches of 50 ops), low enough that a runaway client cannot take a node's workers.
    SYNC_RATE_LIMIT_DEVICE = "120 per minute"
    SYNC_RATE_LIMIT_USER = "600 per minute"
    UPLOAD_RATE_LIMIT_DEVICE = "300 per minute"
    UPLOAD_RATE_LIMIT_USER = "1200 per minute"

    # Logs: one JSON object a line (text when developing).
    LOG_FORMAT = "json"
    LOG_LEVEL = "INFO"
    # /metrics answers a scraper that sends "Authorization: Bearer <METRICS_TOKEN>" (when one is set) or that
    # connects from a network in METRICS_ALLOW (comma-separated CIDRs; "" for none); anyone else gets a 404.
    METRICS_TOKEN = ""
    METRICS_ALLOW = "127.0.0.0/8,::1"
    # Behind nginx: how many proxies set X-Forwarded-For / -Proto (0: trust none).
    PROXY_FIX_X_FOR = 0
    PROXY_FIX_X_PROTO = 0
    PROXY_FIX_X_HOST = 0
    PROXY_FIX_X_PREFIX = 0
    # An operator's map tiles (e.g. "https://tiles.example.cn"); none by default, so none are allowed.
    MAP_TILE_ORIGIN = ""

    # Password guessing: a handful of tries per username and address, then wait.
    LOGIN_RATE_LIMIT = "10 per minute"
    # Activation codes (first login of an imported or reset account): long enough to hand out a printed
    # roster and reach every village, short enough that a lost sheet stops mattering.
    ACTIVATION_CODE_DAYS = 14
    # A county's roster is a few thousand rows; a file beyond these is a mistake, not a roster.
    ROSTER_MAX_BYTES = 5 * 1024 * 1024
    ROSTER_MAX_ROWS = 10_000
    # A whole office behind one NAT address logs in at shift start: generous per address.
    LOGIN_IP_RATE_LIMIT = "60 per minute"
    # Where the limits above are counted: gridcase+db:// is the application's database, which every worker and
    # node shares; redis://host:6379/0 is a Redis they share. memory:// counts in each process on its own
    # (four workers would allow four times the limit): for tests only.
    RATELIMIT_STORAGE_URI = "gridcase+db://"

    # A sync envelope of 500 ops with Chinese text is well under 2 MB; photos never travel in it.
    SYNC_MAX_BYTES = 4 * 1024 * 1024
    SYNC_MAX_OPS = 500
    # Held ops waiting longer than this for their case are shown to reviewers as orphans.
    HELD_ORPHAN_HOURS = 24
    # Device clocks further off than this are flagged (both times are kept).
    CLOCK_SKEW_FLAG_S = 300
    # A location this far outside its micro-grid (beyond the GPS accuracy) is flagged.
    OUTSIDE_TOLERANCE_M = 30.0
    # A child polygon may stick out of its parent by this much: real boundary data has slivers.
    REGION_CONTAINMENT_TOLERANCE_M = 5.0
    # Case numbers: RA-2026-000123 (Rui'an); one prefix per deployment.
    CASE_NUMBER_PREFIX = "RA"
    # Working time (the clock of yellow and blue limits) counts these office hours of working days, China
    # Standard Time: the usual timetable of township offices (上午 8:30-12:00, 下午 14:00-17:30).
    OFFICE_HOURS = "08:30-12:00,14:00-17:30"
    # Seasonal timetables replacing it on their dates, every year, e.g. a summer timetable (夏季作息):
    # "05-01..09-30=08:30-12:00,14:30-18:00"; several separated by ";". Empty: the same hours all year.
    OFFICE_HOURS_SEASONS = ""

    # A full-resolution phone photo is 2-12 MB (HEIC less); 25 MiB leaves room for a 50 MP camera JPEG.
    MEDIA_MAX_BYTES = 25 * 1024 * 1024
    # About 100 photos a day of 5 MB: far beyond a grid worker's day, short of someone filling the disk.
    MEDIA_DAILY_BYTES_PER_USER = 500 * 1024 * 1024
    # Pixels decoded per photo at most: a 50 MP sensor, while a decompression bomb stays refused.
    MEDIA_MAX_PIXELS = 50_000_000
    # EXIF times without an offset are taken as the deployment's local time (China Standard Time).
    MEDIA_EXIF_DEFAULT_UTC_OFFSET_HOURS = 8
    # One upload (PUT or multipart) may take this long at most: a phone trickling bytes cannot hold a worker
    # thread for ever; weak networks have the resumable (tus) path, whose chunks each get this long.
    MEDIA_UPLOAD_TIMEOUT_S = 600
    # A phone that lost its connection comes back within a day; older partial uploads are removed.
    TUS_EXPIRE_HOURS = 24
    # Whole requests (photos come through their own streaming routes with their own limits).
    MAX_CONTENT_LENGTH = 64 * 1024 * 1024
    # The request line and headers (414 url_too_long, 431 headers_too_large): ours are short (ids, a cursor,
    # a token). gunicorn's own limits (gunicorn.conf.py) are looser, so these answer first, in JSON.
    MAX_URL_BYTES = 4096
    MAX_HEADER_BYTES = 16384
    MAX_HEADER_FIELDS = 60

    SQLALCHEMY_ENGINE_OPTIONS: dict = {}
    SQLALCHEMY_TRACK_MODIFICATIONS = False

    # flask-smorest
    API_TITLE = "Gridcase API"
    API_VERSION = "v1"
    OPENAPI_VERSION = "3.0.3"
    OPENAPI_URL_PREFIX = "/api"
    OPENAPI_JSON_PATH = "openapi.json"
    OPENAPI_SWAGGER_UI_PATH = "/docs"
    # Swagger UI from the app itself (static/pwa/vendor/swagger-ui, scripts/vendor.sh): CDNs are often
    # blocked in China, and the docs must open wherever the app does.
    OPENAPI_SWAGGER_UI_URL = "/vendor/swagger-ui/"

    JSON_SORT_KEYS = False

    @staticmethod
    def jwt_settings(config) -> dict:
        return {
            "JWT_ACCESS_TOKEN_EXPIRES": timedelta(minutes=int(config["ACCESS_TOKEN_MINUTES"])),
            "JWT_REFRESH_TOKEN_EXPIRES": timedelta(days=int(config["REFRESH_TOKEN_DAYS"])),
            "JWT_TOKEN_LOCATION": ["headers"],
            "JWT_ERROR_MESSAGE_KEY": "detail",
        }
