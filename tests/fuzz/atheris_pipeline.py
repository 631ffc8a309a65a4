"""Coverage-guided fuzzing of the photo pipeline with atheris (libFuzzer), by hand, not in CI.

    .venv/bin/pip install atheris            # it ships wheels for CPython 3.11 on x86-64 Linux
    mkdir -p /tmp/photo-corpus && cp tests/fixtures/photos/*.{jpg,heif,HEIC} /tmp/photo-corpus/
    .venv/bin/python tests/fuzz/atheris_pipeline.py /tmp/photo-corpus -timeout=20 -rss_limit_mb=4096 \
        -max_len=3000000 -max_total_time=3600

Any exception other than PhotoRejected is a crash (libFuzzer writes the input to ./crash-<sha1>); a case
that runs longer than -timeout seconds is a hang (./timeout-<sha1>). Replay one with
``.venv/bin/python tests/fuzz/atheris_pipeline.py ./crash-<sha1>``. Inputs are written to a temporary file
because ``process_photo`` takes a path (as the upload routes spool to disk first).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

with atheris.instrument_imports(include=["app.media.pipeline", "PIL", "pillow_heif"]):
    from app.media.pipeline import PhotoRejected, process_photo

_FD, _PATH = tempfile.mkstemp(prefix="gridcase-atheris-", suffix=".bin")
os.close(_FD)


def test_one_input(data: bytes) -> None:
    with open(_PATH, "wb") as fh:
        fh.write(data)
    try:
        process_photo(_PATH)
    except PhotoRejected:
        pass


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    try:
        atheris.Fuzz()
    finally:
        os.unlink(_PATH)


if __name__ == "__main__":
    main()
