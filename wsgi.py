"""The WSGI entry point: ``gunicorn wsgi:app``, ``flask --app wsgi …``."""

import gc

from app import create_app

app = create_app()
# Everything made at start-up (modules, the app, SQLAlchemy's metadata and mappers) lives as long as the
# process: moved out of the collector's reach, a full collection no longer walks it (a worker's full
# collections took 67-79 ms each, a stalled request each time; now a few ms). Under --preload the
# workers inherit it frozen from the master.
gc.freeze()
