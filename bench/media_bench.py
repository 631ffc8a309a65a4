"""Photo intake throughput: sha256 + process_photo + LocalStorage put of the original and both derivatives.

    .venv/bin/python bench/media_bench.py             # with JPEG draft mode (DCT scaling), as in production
    .venv/bin/python bench/media_bench.py --no-draft  # full-size decode, for the before/after
    .venv/bin/python bench/media_bench.py --threads 2 # two photos at a time in the one process

By default one process, one thread, so photos/s is per core; ``--threads N`` runs N photos at once in the
one process, as a gunicorn gthread worker does (Pillow and hashlib release the GIL while they work), and
"per CPU-second" stays the per-core figure. Inputs are made in a child process from the test fixtures
(a 4000x3000 and a 1600x1200 camera-like JPEG, quality 90, EXIF with GPS copied from a phone photo; and
"pwa", the 1600x1200 photo as the PWA's canvas uploads it: quality 0.82, no metadata) so that making them
does not count towards this process's peak RSS. Targets: >= 12 photos/s at 12 MP, >= 80 photos/s at
1600x1200, peak RSS < 300 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT / "tests" / "fixtures" / "photos"
sys.path.insert(0, str(ROOT))

TARGETS = {"12mp": 12.0, "1600x1200": 80.0, "pwa": 80.0}  # photos/s
RSS_TARGET_MB = 300


def make_inputs(out_dir: Path) -> None:
    """Write 12mp.jpg and 1600x1200.jpg: a real 10 MP camera photo's pixels, a phone's EXIF (with GPS)."""
    from PIL import Image

    with Image.open(PHOTOS / "HMD_Nokia_8.3_5G.jpg") as phone:
        exif = phone.info["exif"]
    with Image.open(PHOTOS / "corrupted.jpg") as src:  # 3648x2736: pixels fine (only its EXIF is broken)
        src.load()
        for name, size in (("12mp.jpg", (4000, 3000)), ("1600x1200.jpg", (1600, 1200))):
            src.resize(size, Image.Resampling.LANCZOS).save(out_dir / name, "JPEG", quality=90, exif=exif)
        # What the PWA uploads: its canvas at 1600 px and quality 0.82, no metadata (the display copy is
        # kept as it is; only the thumbnail is decoded).
        src.resize((1600, 1200), Image.Resampling.LANCZOS).save(out_dir / "pwa.jpg", "JPEG", quality=82)


def machine() -> dict:
    from machine import machine as base
    from PIL import __version__ as pillow_version
    from PIL import features

    return {**base(), "pillow": pillow_version, "libjpeg_turbo": features.version("libjpeg_turbo")}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


STAGES = ("sha256", "process_photo", "store")


def intake(path: Path, store, *, draft: bool, stages: dict[str, float]) -> None:
    """What the upload endpoint does with one photo; adds each stage's seconds to ``stages``."""
    from app.media.pipeline import process_photo
    from app.media.storage import file_sha256, store_photo

    t0 = time.perf_counter()
    sha = file_sha256(path)
    t1 = time.perf_counter()
    photo = process_photo(path, draft=draft)
    t2 = time.perf_counter()
    # As app/media/services.py does: the original from its file, the derivatives from memory, all three at once.
    store_photo(store, sha, path, photo.thumb, photo.display)
    t3 = time.perf_counter()
    for stage, seconds in zip(STAGES, (t1 - t0, t2 - t1, t3 - t2)):
        stages[stage] = stages.get(stage, 0.0) + seconds


def run(path: Path, store, *, draft: bool, seconds: float, min_count: int,
        threads: int = 1) -> tuple[int, float, dict[str, float]]:
    """Photos done in ``seconds`` (at least ``min_count``) by ``threads`` threads of this process, each taking
    photos one after the other as a gunicorn thread does; stage times are summed over the threads."""
    import threading

    for _ in range(3):  # warm-up: imports, codec tables, page cache
        intake(path, store, draft=draft, stages={})
    stages: dict[str, float] = {}
    lock = threading.Lock()
    counts = [0] * threads
    start, cpu_start = time.perf_counter(), time.process_time()

    def worker(i: int) -> None:
        mine: dict[str, float] = {}
        while sum(counts) < min_count or time.perf_counter() - start < seconds:
            intake(path, store, draft=draft, stages=mine)
            counts[i] += 1
        with lock:
            for k, v in mine.items():
                stages[k] = stages.get(k, 0.0) + v

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    # CPU seconds too: on a shared machine wall time also counts other people's processes.
    stages["cpu"] = time.process_time() - cpu_start
    return sum(counts), time.perf_counter() - start, stages


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-draft", action="store_true", help="decode JPEGs at full size (no DCT scaling)")
    parser.add_argument("--seconds", type=float, default=5.0, help="time per input (default 5)")
    parser.add_argument("--threads", type=int, default=1,
                        help="photos processed at once by this many threads of the one process (default 1: "
                             "photos/s per core; gunicorn's gthread workers run several)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.add_argument("--make-inputs", metavar="DIR", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.make_inputs:
        make_inputs(Path(args.make_inputs))
        return 0

    from app.media.storage import LocalStorage

    draft = not args.no_draft
    with tempfile.TemporaryDirectory(prefix="media-bench-") as tmp:
        tmp_path = Path(tmp)
        subprocess.run([sys.executable, __file__, "--make-inputs", str(tmp_path)], check=True)
        store = LocalStorage(tmp_path / "media")
        import app.media.pipeline  # noqa: F401  (imports before the baseline, so it is not counted as work)

        baseline = peak_rss_mb()
        results = {}
        for name in TARGETS:
            path = tmp_path / f"{name}.jpg"
            count, elapsed, stages = run(path, store, draft=draft, seconds=args.seconds, min_count=20,
                                         threads=args.threads)
            results[name] = {"photos": count, "seconds": round(elapsed, 2), "per_s": round(count / elapsed, 1),
                             "ms_each": round(1000 * elapsed / count, 1), "bytes": path.stat().st_size,
                             "per_cpu_s": round(count / stages.pop("cpu"), 1),
                             "ms_by_stage": {k: round(1000 * v / count, 1) for k, v in stages.items()}}
        peak = peak_rss_mb()

    report = {"draft": draft, "threads": args.threads, "machine": machine(), "results": results,
              "rss_after_imports_mb": round(baseline, 1), "peak_rss_mb": round(peak, 1)}
    ok = all(results[n]["per_s"] >= t for n, t in TARGETS.items()) and peak < RSS_TARGET_MB
    if args.json:
        print(json.dumps(report | {"targets_met": ok}))
        return 0
    m = report["machine"]
    print(f"machine: {m['cpu']}, nproc {m['nproc']}, {m['platform']}, Python {m['python']}, "
          f"Pillow {m['pillow']} (libjpeg-turbo {m['libjpeg_turbo']})")
    threads = "one thread" if args.threads == 1 else f"{args.threads} threads"
    print(f"draft mode: {'on' if draft else 'OFF (--no-draft)'}; one process, {threads}; "
          f"load average {os.getloadavg()[0]:.2f}")
    for name, r in results.items():
        verdict = "ok" if r["per_s"] >= TARGETS[name] else "BELOW TARGET"
        print(f"  {name:>9}: {r['per_s']:7.1f} photos/s  ({r['ms_each']} ms each, {r['photos']} photos, "
              f"input {r['bytes'] / 1e6:.1f} MB)  target >= {TARGETS[name]:.0f}: {verdict}")
        print(f"             per CPU-second: {r['per_cpu_s']:.1f}; wall ms (summed over threads): "
              + ", ".join(f"{k} {v}" for k, v in r["ms_by_stage"].items()))
    print(f"peak RSS: {peak:.0f} MB (after imports: {baseline:.0f} MB)  target < {RSS_TARGET_MB}: "
          f"{'ok' if peak < RSS_TARGET_MB else 'ABOVE TARGET'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
