"""A child process that runs the photo pipeline on one input at a time, so that the fuzz tests can put a
hard timeout on each case: a hang inside a C decoder (libjpeg, libpng, libheif) never returns to Python,
where a signal-based timeout would never fire. The parent kills the child and fails the example instead.
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
import traceback
from dataclasses import dataclass


def _serve(conn, tmpdir: str) -> None:  # pragma: no cover - runs in the child
    from app.media.pipeline import PhotoRejected, ProcessedPhoto, process_photo

    path = os.path.join(tmpdir, "upload.bin")
    while True:
        try:
            data = conn.recv_bytes()
        except EOFError:
            return
        with open(path, "wb") as fh:
            fh.write(data)
        try:
            result = process_photo(path)
        except PhotoRejected as exc:
            conn.send(("rejected", exc.code))
        except BaseException as exc:  # noqa: BLE001 - that is the finding
            conn.send(("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))
        else:
            ok = isinstance(result, ProcessedPhoto) and result.thumb[:2] == b"\xff\xd8" \
                and result.display[:2] == b"\xff\xd8"
            conn.send(("ok", (result.format, result.width, result.height)) if ok else ("error", repr(result)))


@dataclass
class Outcome:
    status: str  # ok, rejected, error, timeout, crashed
    detail: object


class PhotoWorker:
    def __init__(self, timeout_s: float):
        self.timeout_s = timeout_s
        self._ctx = multiprocessing.get_context("spawn")  # no inherited database connections or threads
        self._tmp = tempfile.TemporaryDirectory(prefix="gridcase-photo-fuzz-")
        self._start()

    def _start(self) -> None:
        self.conn, child = self._ctx.Pipe()
        self.proc = self._ctx.Process(target=_serve, args=(child, self._tmp.name), daemon=True)
        self.proc.start()
        child.close()

    def run(self, data: bytes) -> Outcome:
        self.conn.send_bytes(data)
        if not self.conn.poll(self.timeout_s):
            self._restart()
            return Outcome("timeout", f"no answer within {self.timeout_s} s")
        try:
            status, detail = self.conn.recv()
        except (EOFError, ConnectionError):
            code = self.proc.exitcode
            self._restart()
            return Outcome("crashed", f"worker died (exit code {code})")
        return Outcome(status, detail)

    def _restart(self) -> None:
        self.proc.kill()
        self.proc.join(5)
        self.conn.close()
        self._start()

    def close(self) -> None:
        self.conn.close()
        self.proc.kill()
        self.proc.join(5)
        self._tmp.cleanup()
