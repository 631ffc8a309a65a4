"""Fault tests: real gunicorn and PostgreSQL processes on loopback, each bounded to well under a minute.

They run on the suite's engine (``--db=sqlite`` / ``--db=postgresql``) and are marked ``slow``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
