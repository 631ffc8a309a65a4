"""The photo pipeline against real camera/phone files and hostile generated ones."""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import tempfile
import zipfile
import zlib
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from PIL import Image, ImageFile

from app.errors import MESSAGES
from app.media.pipeline import (
    DISPLAY_SIZE,
    THUMB_SIZE,
    PhotoRejected,
    ProcessedPhoto,
    hamming,
    process_photo,
    sniff_format,
)

ROOT = Path(__file__).resolve().parents[2]


# --- helpers ----------------------------------------------------------------------------------------


def jpeg_markers(data: bytes) -> list[tuple[int, bytes]]:
    """(marker, payload) of every segment before the scan data."""
    assert data[:2] == b"\xff\xd8"
    out, pos = [], 2
    while pos < len(data):
        assert data[pos] == 0xFF, f"bad marker at {pos}"
        marker = data[pos + 1]
        length = struct.unpack(">H", data[pos + 2:pos + 4])[0]
        out.append((marker, data[pos + 4:pos + 2 + length]))
        if marker == 0xDA:  # SOS: entropy-coded data follows
            break
        pos += 2 + length
    return out


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bytes(img: Image.Image, **params) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG", **params)
    return buf.getvalue()


def jpeg_bytes(img: Image.Image, **params) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", **params)
    return buf.getvalue()


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def rejected(path: Path, **kwargs) -> str:
    with pytest.raises(PhotoRejected) as info:
        process_photo(path, **kwargs)
    assert info.value.status == 422
    return info.value.code


def assert_bare_jpeg(data: bytes) -> None:
    """A plain JPEG re-encode: no EXIF, XMP, ICC, comment, and nothing after the end of image."""
    markers = jpeg_markers(data)
    allowed = {0xE0, 0xDB, 0xC0, 0xC2, 0xC4, 0xDD, 0xDA}  # JFIF, DQT, SOF0/2, DHT, DRI, SOS
    assert {m for m, _ in markers} <= allowed, [hex(m) for m, _ in markers]
    assert not any(payload.startswith(b"Exif") for _, payload in markers)
    assert b"Exif\x00\x00" not in data and b"http://ns.adobe.com" not in data and b"ICC_PROFILE" not in data
    assert data.endswith(b"\xff\xd9")
    with Image.open(io.BytesIO(data)) as img:
        assert img.format == "JPEG"
        assert len(img.getexif()) == 0
        assert not {"exif", "icc_profile", "xmp", "comment"} & set(img.info)
        img.load()


def thumb_of(result: ProcessedPhoto) -> Image.Image:
    return Image.open(io.BytesIO(result.thumb)).convert("RGB")


def mean_abs_diff(a: Image.Image, b: Image.Image) -> float:
    a, b = a.convert("L"), b.convert("L").resize(a.size)
    pa, pb = a.tobytes(), b.tobytes()
    return sum(abs(x - y) for x, y in zip(pa, pb)) / len(pa)


# --- sniffing ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("head, expected", [
    (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "JPEG"),
    (b"\xff\xd8\xff\xe1\x1c\x45Exif\x00\x00", "JPEG"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "PNG"),
    (b"RIFF\x24\x00\x00\x00WEBPVP8 ", "WEBP"),
    (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00", "HEIF"),
    (b"\x00\x00\x00\x18ftypheix\x00\x00\x00\x00", "HEIF"),
    (b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00", "HEIF"),
    (b"\x00\x00\x00\x18ftypmsf1\x00\x00\x00\x00", "HEIF"),
    (b"\x00\x00\x00\x18ftypheif\x00\x00\x00\x00", "HEIF"),
    (b"\x00\x00\x00\x18ftyphevc\x00\x00\x00\x00", "HEIF"),
    (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg">', None),
    (b"<svg xmlns='http://www.w3.org/2000/svg'/>", None),
    (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3", None),
    (b"%!PS-Adobe-3.0 EPSF-3.0\n", None),
    (b"\xc5\xd0\xd3\xc6\x1e\x00\x00\x00", None),  # binary EPS
    (b"<!DOCTYPE html><html>", None),
    (b"GIF89a\x01\x00\x01\x00", None),
    (b"II*\x00\x08\x00\x00\x00", None),  # TIFF
    (b"BM\x36\x00\x00\x00\x00\x00", None),
    (b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00", None),
    (b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00", None),  # MP4 video
    (b"RIFF\x24\x00\x00\x00WAVEfmt ", None),
    (b"PK\x03\x04\x14\x00", None),
    (b"\xff\xd8", None),
    (b"", None),
])
def test_sniff_format_accepts_only_the_allowlist(head, expected):
    assert sniff_format(head) == expected


def test_sniff_format_on_the_real_files(photos):
    assert sniff_format((photos / "DSCN0010.jpg").read_bytes()[:16]) == "JPEG"
    assert sniff_format((photos / "iphone_13_pro_max.HEIC").read_bytes()[:16]) == "HEIF"
    assert sniff_format((photos / "HMD_Nokia_8.3_5G_hdr.heif").read_bytes()[:16]) == "HEIF"
    assert sniff_format((photos / "samplefilehub.heif").read_bytes()[:16]) == "HEIF"


# --- EXIF facts -------------------------------------------------------------------------------------

# Decimal degrees worked out by hand from each file's GPS IFD (deg, min, sec, ref).
KNOWN_POSITIONS = [
    ("DSCN0010.jpg", 43.4674483, 11.8851267),
    ("DSCN0012.jpg", 43.4671567, 11.8853950),
    ("DSCN0021.jpg", 43.4670817, 11.8845383),
    ("DSCN0040.jpg", 43.4660117, 11.8791117),
    ("87_OSError.jpg", 43.7855944, 11.2346194),
    ("HMD_Nokia_8.3_5G.jpg", 60.1467056, 24.9067722),
    ("HMD_Nokia_8.3_5G_hdr.heif", 40.6629935, -3.7637405),  # west: the W reference makes it negative
]


@pytest.mark.parametrize("name, lat, lon", KNOWN_POSITIONS)
def test_gps_matches_the_known_positions(photos, name, lat, lon):
    result = process_photo(photos / name)
    assert result.exif_lat == pytest.approx(lat, abs=1e-6)  # ~0.1 m
    assert result.exif_lon == pytest.approx(lon, abs=1e-6)


@pytest.mark.parametrize("name", [
    "45-gps_ifd.jpg",  # a GPS IFD pointer with a zero count
    "Canon_40D.jpg",  # a GPS IFD holding only the version
    "landscape_3.jpg", "iphone_13_pro_max.HEIC", "image02206.jpg",
])
def test_no_or_partial_gps_gives_none(photos, name):
    result = process_photo(photos / name)
    assert result.exif_lat is None and result.exif_lon is None


def _jpeg_with_gps(gps: dict) -> bytes:
    exif = Image.Exif()
    exif.get_ifd(0x8825).update(gps)
    return jpeg_bytes(Image.new("RGB", (64, 48), "gray"), exif=exif.tobytes())


@pytest.mark.parametrize("gps, expected", [
    ({1: "N", 2: (31.0, 14.0, 24.0), 3: "E", 4: (121.0, 28.0, 12.0)}, (31.24, 121.47)),
    ({1: "S", 2: (33.0, 52.0, 12.0), 3: "W", 4: (70.0, 36.0, 0.0)}, (-33.87, -70.6)),
    ({2: (31.0, 14.0, 24.0), 4: (121.0, 28.0, 12.0)}, (None, None)),  # no references
    ({1: "N", 2: (31.0, 14.0, 24.0)}, (None, None)),  # latitude only
    ({1: "N", 2: (95.0, 0.0, 0.0), 3: "E", 4: (121.0, 0.0, 0.0)}, (None, None)),  # off the globe
    ({1: "N", 2: (0.0, 0.0, 0.0), 3: "E", 4: (0.0, 0.0, 0.0)}, (None, None)),  # "no fix" zeros
    ({1: "X", 2: (31.0, 0.0, 0.0), 3: "E", 4: (121.0, 0.0, 0.0)}, (None, None)),
    ({9: "V", 1: "N", 2: (31.0, 0.0, 0.0), 3: "E", 4: (121.0, 0.0, 0.0)}, (None, None)),  # void fix
    ({1: "N", 2: (31.0, 14.0, 24.0, 1.0), 3: "E", 4: (121.0, 0.0, 0.0)}, (None, None)),  # 4 values
])
def test_gps_edge_cases(tmp_path, gps, expected):
    result = process_photo(write(tmp_path, "g.jpg", _jpeg_with_gps(gps)))
    if expected[0] is None:
        assert (result.exif_lat, result.exif_lon) == (None, None)
    else:
        assert result.exif_lat == pytest.approx(expected[0], abs=1e-4)
        assert result.exif_lon == pytest.approx(expected[1], abs=1e-4)


def test_gps_with_a_zero_denominator_gives_none(tmp_path):
    data = bytearray(_jpeg_with_gps({1: "N", 2: (31.0, 14.0, 24.0), 3: "E", 4: (121.0, 28.0, 12.0)}))
    # Rationals are stored as (numerator, denominator) uint32 pairs; 121/1 becomes 121/0.
    needle = struct.pack("<II", 121, 1)
    assert needle in data
    start = data.index(needle)
    data[start:start + 8] = struct.pack("<II", 121, 0)
    result = process_photo(write(tmp_path, "z.jpg", bytes(data)))
    assert (result.exif_lat, result.exif_lon) == (None, None)


def test_exif_time_naive_and_with_offset(photos):
    assert process_photo(photos / "DSCN0010.jpg").exif_time == datetime(2008, 10, 22, 16, 28, 39)
    nokia = process_photo(photos / "HMD_Nokia_8.3_5G.jpg").exif_time
    assert nokia == datetime(2022, 8, 14, 14, 12, 31, tzinfo=timezone(timedelta(hours=3)))
    iphone = process_photo(photos / "iphone_13_pro_max.HEIC").exif_time
    assert iphone == datetime(2022, 2, 16, 12, 55, 41, tzinfo=timezone(timedelta(hours=1)))
    assert process_photo(photos / "landscape_3.jpg").exif_time is None


def test_camera(photos):
    assert process_photo(photos / "Canon_40D.jpg").camera == "Canon EOS 40D"
    assert process_photo(photos / "87_OSError.jpg").camera == "NIKON D70s"
    assert process_photo(photos / "iphone_13_pro_max.HEIC").camera == "Apple iPhone 13 Pro Max"
    assert process_photo(photos / "HMD_Nokia_8.3_5G.jpg").camera == "HMD Global Nokia 8.3 5G"
    assert process_photo(photos / "image02206.jpg").camera is None


# --- orientation ------------------------------------------------------------------------------------


@pytest.mark.parametrize("a, b, orientations, landscape", [
    ("landscape_3.jpg", "landscape_6.jpg", (3, 6), True),
    ("portrait_5.jpg", "portrait_8.jpg", (5, 8), False),
])
def test_real_orientations_come_out_upright(photos, a, b, orientations, landscape):
    # Each pair is one scene stored two different ways; upright, the two look the same (only the big
    # digit naming the orientation differs), and nothing like the same scene upside down.
    ra, rb = process_photo(photos / a), process_photo(photos / b)
    assert (ra.orientation, rb.orientation) == orientations
    for r in (ra, rb):
        assert (r.width > r.height) is landscape
        assert (r.display_size[0] > r.display_size[1]) is landscape
        assert (r.thumb_size[0] > r.thumb_size[1]) is landscape
    ta, tb = thumb_of(ra), thumb_of(rb)
    assert mean_abs_diff(ta, tb) < 12
    assert mean_abs_diff(ta, tb.transpose(Image.Transpose.ROTATE_180)) > 2 * mean_abs_diff(ta, tb)
    assert hamming(ra.phash, rb.phash) <= 10


_INVERSE = {  # what a camera does to upright pixels before writing orientation N
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}
_QUADRANTS = {(0, 0): (255, 0, 0), (1, 0): (0, 255, 0), (0, 1): (0, 0, 255), (1, 1): (255, 255, 255)}


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_comes_out_upright(tmp_path, orientation):
    upright = Image.new("RGB", (400, 200))
    for (qx, qy), colour in _QUADRANTS.items():
        upright.paste(colour, (qx * 200, qy * 100, qx * 200 + 200, qy * 100 + 100))
    stored = upright if _INVERSE[orientation] is None else upright.transpose(_INVERSE[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = write(tmp_path, f"o{orientation}.jpg", jpeg_bytes(stored, exif=exif.tobytes(), quality=95))

    result = process_photo(path)
    assert result.orientation == orientation
    assert (result.width, result.height) == (400, 200)
    display = Image.open(io.BytesIO(result.display)).convert("RGB")
    assert display.size == (400, 200)
    for (qx, qy), colour in _QUADRANTS.items():
        got = display.getpixel((qx * 200 + 100, qy * 100 + 50))
        assert all(abs(g - c) < 40 for g, c in zip(got, colour)), (orientation, (qx, qy), got)


# --- HEIF -------------------------------------------------------------------------------------------


def test_iphone_heic_decodes_upright(photos):
    result = process_photo(photos / "iphone_13_pro_max.HEIC")
    assert (result.format, result.mime) == ("HEIF", "image/heic")
    assert (result.width, result.height) == (3024, 4032)
    assert result.orientation == 6  # what the phone wrote; libheif has already turned the pixels
    assert result.display_size == (1200, 1600) and result.thumb_size == (240, 320)
    assert_bare_jpeg(result.display)


def test_nokia_heif_decodes(photos):
    result = process_photo(photos / "HMD_Nokia_8.3_5G_hdr.heif")
    assert result.format == "HEIF"
    assert (result.width, result.height) == (4608, 3456)
    assert result.display_size == (1600, 1200)
    assert_bare_jpeg(result.display)
    assert process_photo(photos / "samplefilehub.heif").display_size == (640, 426)


@pytest.mark.parametrize("name", ["iphone_13_pro_max.HEIC", "HMD_Nokia_8.3_5G_hdr.heif", "samplefilehub.heif"])
@pytest.mark.parametrize("keep", [0.1, 0.5, 0.99])
def test_truncated_heif_is_refused(tmp_path, photos, name, keep):
    # libheif alone would decode the missing tiles as flat green and report success.
    data = (photos / name).read_bytes()
    assert rejected(write(tmp_path, "t.heic", data[: int(len(data) * keep)])) == "photo_corrupt"


def test_heif_with_trailing_junk_is_refused(tmp_path, photos):
    data = (photos / "samplefilehub.heif").read_bytes()
    assert rejected(write(tmp_path, "j.heic", data + b"PK\x03\x04junkjunkjunk")) == "photo_corrupt"


# --- corrupt EXIF: accepted, and never a hang ---------------------------------------------------------

CORRUPT_EXIF = ["corrupted.jpg", "image01088.jpg", "image00971.jpg", "image02206.jpg",
                "36-memory_error.jpg", "87_OSError.jpg", "35-empty.jpg", "45-gps_ifd.jpg"]

_CHILD = """
import json, sys
sys.path.insert(0, sys.argv[1])
from app.media.pipeline import process_photo
r = process_photo(sys.argv[2])
print(json.dumps({"format": r.format, "size": [r.width, r.height], "display": list(r.display_size),
                  "thumb_len": len(r.thumb), "display_len": len(r.display)}))
"""


@pytest.mark.parametrize("name", CORRUPT_EXIF)
def test_corrupt_exif_is_accepted_without_a_hang(photos, name):
    # In a child process with a deadline: a hang in C code would never yield to an in-process timer.
    done = subprocess.run([sys.executable, "-c", _CHILD, str(ROOT), str(photos / name)],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout)
    assert out["format"] == "JPEG" and out["thumb_len"] > 0 and out["display_len"] > 0
    assert max(out["display"]) == min(DISPLAY_SIZE, max(out["size"]))


# --- hostile generated files ------------------------------------------------------------------------


def _png_header_claiming(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


@pytest.mark.parametrize("side", [
    30000,  # 900 MP: Pillow's own hard limit (2 x MAX_IMAGE_PIXELS) fires in Image.open
    10000,  # 100 MP: over MAX_IMAGE_PIXELS, Pillow only warns; the warning is made an error
    8000,  # 64 MP: under Pillow's limits, over ours (50 MP)
])
def test_pixel_bombs_are_refused_before_decoding(tmp_path, side):
    assert rejected(write(tmp_path, "bomb.png", _png_header_claiming(side, side))) == "photo_too_large_pixels"


def test_jpeg_claiming_30000_square_is_refused(tmp_path, photos):
    data = bytearray((photos / "DSCN0010.jpg").read_bytes())
    # Find the frame header by walking the segments (the EXIF thumbnail holds an SOF of its own).
    pos = 2
    while data[pos + 1] not in (0xC0, 0xC2):
        pos += 2 + struct.unpack(">H", data[pos + 2:pos + 4])[0]
    data[pos + 5:pos + 9] = struct.pack(">HH", 30000, 30000)  # height, width
    assert rejected(write(tmp_path, "bomb.jpg", bytes(data))) == "photo_too_large_pixels"


def test_max_pixels_is_a_parameter(tmp_path, photos):
    assert rejected(photos / "DSCN0010.jpg", max_pixels=640 * 480 - 1) == "photo_too_large_pixels"
    assert process_photo(photos / "DSCN0010.jpg", max_pixels=640 * 480).width == 640


def test_truncated_jpeg_is_refused(tmp_path, photos):
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    data = (photos / "DSCN0010.jpg").read_bytes()
    for cut in (len(data) * 2 // 3, 2000, 3):
        assert rejected(write(tmp_path, f"cut{cut}.jpg", data[:cut])) == "photo_corrupt"


def test_refuses_to_run_with_load_truncated_images_on(photos, monkeypatch):
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(RuntimeError):
        process_photo(photos / "DSCN0010.jpg")


def test_truncated_png_is_refused(tmp_path, photos):
    data = png_bytes(Image.open(photos / "DSCN0010.jpg"))
    assert rejected(write(tmp_path, "cut.png", data[: len(data) // 2])) == "photo_corrupt"


def test_truncated_webp_is_refused(tmp_path, photos):
    buf = io.BytesIO()
    Image.open(photos / "DSCN0010.jpg").save(buf, "WEBP", quality=80)
    data = buf.getvalue()
    assert process_photo(write(tmp_path, "whole.webp", data)).format == "WEBP"
    for keep in (0.5, 0.95):
        assert rejected(write(tmp_path, "cut.webp", data[: int(len(data) * keep)])) == "photo_corrupt"


def test_magic_then_garbage_is_refused(tmp_path):
    for name, magic in [("a.jpg", b"\xff\xd8\xff\xe0"), ("b.png", b"\x89PNG\r\n\x1a\n"),
                        ("c.webp", b"RIFF\x00\x10\x00\x00WEBPVP8 "), ("d.heic", b"\x00\x00\x00\x18ftypheic")]:
        assert rejected(write(tmp_path, name, magic + bytes(range(256)) * 8)) == "photo_corrupt"


def test_zero_bytes_is_refused(tmp_path):
    assert rejected(write(tmp_path, "empty.jpg", b"")) == "photo_empty"


@pytest.mark.parametrize("body", [
    b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>',
    b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF",
    b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n",
    b"<!DOCTYPE html><html><body><img src=x onerror=alert(1)></body></html>",
])
def test_non_images_renamed_jpg_are_refused(tmp_path, body):
    assert rejected(write(tmp_path, "evil.jpg", body)) == "photo_unsupported_format"


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF"])
def test_decodable_but_not_allowlisted_formats_are_refused(tmp_path, fmt):
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), "red").save(buf, fmt)
    assert rejected(write(tmp_path, "x.jpg", buf.getvalue())) == "photo_unsupported_format"


def test_the_bytes_decide_the_format_not_the_name(tmp_path, photos):
    png = write(tmp_path, "really_a_png.jpg", png_bytes(Image.new("RGB", (50, 40), "blue")))
    assert (process_photo(png).format, process_photo(png).mime) == ("PNG", "image/png")
    jpg = write(tmp_path, "really_a_jpeg.png", (photos / "DSCN0010.jpg").read_bytes())
    assert process_photo(jpg).format == "JPEG"


def _html_polyglot(jpeg: bytes) -> bytes:
    html = b"<html><body><script>alert(document.cookie)</script></body></html>"
    comment = b"\xff\xfe" + struct.pack(">H", len(html) + 2) + html  # a COM segment right after SOI
    return jpeg[:2] + comment + jpeg[2:] + html  # and the same again after EOI


def _zip_polyglot(jpeg: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("payload.html", "<html><script>alert(1)</script></html>")
    return jpeg + buf.getvalue()


@pytest.mark.parametrize("make, needles", [
    (_html_polyglot, [b"<html", b"<script"]),
    (_zip_polyglot, [b"PK\x03\x04", b"payload.html", b"<html"]),
])
def test_polyglots_come_out_as_clean_jpeg(tmp_path, photos, make, needles):
    data = make((photos / "DSCN0010.jpg").read_bytes())
    assert sniff_format(data[:16]) == "JPEG"
    assert all(needle in data for needle in needles)
    result = process_photo(write(tmp_path, "poly.jpg", data))
    for derivative in (result.thumb, result.display):
        assert_bare_jpeg(derivative)
        assert not any(needle in derivative for needle in needles)


def test_png_with_a_zlib_bomb_text_chunk_is_refused(tmp_path):
    ztxt = b"Comment\x00\x00" + zlib.compress(b"A" * (64 * 1024 * 1024), 9)  # 64 MiB in ~64 KiB
    png = png_bytes(Image.new("RGB", (20, 20), "green"))
    data = png[:33] + png_chunk(b"zTXt", ztxt) + png[33:]  # after the signature and IHDR
    assert rejected(write(tmp_path, "ztxt.png", data)) == "photo_corrupt"


def test_png_with_too_much_plain_text_is_refused(tmp_path):
    png = png_bytes(Image.new("RGB", (20, 20), "green"))
    text = b"".join(png_chunk(b"tEXt", b"k%d\x00" % i + b"x" * (1024 * 1024 - 8)) for i in range(6))
    data = png[:33] + text + png[33:]
    assert rejected(write(tmp_path, "text.png", data)) == "photo_corrupt"


def test_png_with_a_text_chunk_claiming_2_gib_is_refused(tmp_path):
    png = png_bytes(Image.new("RGB", (20, 20), "green"))
    liar = struct.pack(">I", 0x7FFFFFFF) + b"tEXt" + b"k\x00" + b"x" * 1000
    assert rejected(write(tmp_path, "liar.png", png[:33] + liar)) == "photo_corrupt"


# --- derivatives ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["DSCN0010.jpg", "HMD_Nokia_8.3_5G.jpg", "iphone_13_pro_max.HEIC",
                                  "Canon_40D.jpg", "87_OSError.jpg"])
def test_derivatives_carry_no_metadata(photos, name):
    result = process_photo(photos / name)
    for derivative in (result.thumb, result.display):
        assert_bare_jpeg(derivative)
        assert b"GPS" not in derivative
        assert b"NIKON" not in derivative and b"Apple" not in derivative and b"Canon" not in derivative


def test_derivative_sizes_and_never_upscaled(photos):
    big = process_photo(photos / "HMD_Nokia_8.3_5G.jpg")  # 4608 x 1976
    assert max(big.display_size) == DISPLAY_SIZE and max(big.thumb_size) == THUMB_SIZE
    assert Image.open(io.BytesIO(big.display)).size == big.display_size
    small = process_photo(photos / "Canon_40D.jpg")  # 100 x 68
    assert small.display_size == small.thumb_size == (100, 68)


@pytest.fixture(scope="module")
def twelve_mp_jpeg(tmp_path_factory, photos) -> Path:
    """A 4000 x 3000 camera-like JPEG (a real 10 MP photo scaled up, quality 90)."""
    path = tmp_path_factory.mktemp("big") / "12mp.jpg"
    with Image.open(photos / "corrupted.jpg") as src:
        src.resize((4000, 3000), Image.Resampling.BICUBIC).save(path, "JPEG", quality=90)
    return path


def test_draft_mode_decodes_a_12mp_jpeg_at_reduced_size(twelve_mp_jpeg):
    result = process_photo(twelve_mp_jpeg)
    assert (result.width, result.height) == (4000, 3000)
    # DCT scaling: decoded at 1/2 scale, never more than twice the display size.
    assert max(result.decoded_size) <= 2 * DISPLAY_SIZE
    assert result.decoded_size == (2000, 1500)
    assert result.display_size == (1600, 1200)
    full = process_photo(twelve_mp_jpeg, draft=False)
    assert full.decoded_size == (4000, 3000) and full.display_size == (1600, 1200)
    assert hamming(result.phash, full.phash) <= 4


@pytest.mark.parametrize("img, params", [
    (Image.new("RGBA", (60, 40), (255, 0, 0, 0)), {}),  # fully transparent red
    (Image.new("LA", (60, 40), (0, 0)), {}),
    (Image.new("P", (60, 40), 0), {"transparency": 0}),
])
def test_transparency_is_flattened_on_white(tmp_path, img, params):
    result = process_photo(write(tmp_path, "a.png", png_bytes(img, **params)))
    assert all(v > 245 for v in thumb_of(result).getpixel((30, 20)))


def test_webp_with_alpha(tmp_path):
    buf = io.BytesIO()
    Image.new("RGBA", (60, 40), (0, 0, 255, 0)).save(buf, "WEBP", lossless=True)
    result = process_photo(write(tmp_path, "a.webp", buf.getvalue()))
    assert (result.format, result.mime) == ("WEBP", "image/webp")
    assert all(v > 245 for v in thumb_of(result).getpixel((30, 20)))


def test_sixteen_bit_grey_is_scaled_not_clipped(tmp_path):
    img = Image.new("I;16", (60, 40), 32768)  # mid grey in 16 bits
    result = process_photo(write(tmp_path, "g16.png", png_bytes(img)))
    assert 110 < thumb_of(result).getpixel((30, 20))[0] < 145


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    path = write(tmp_path, "cmyk.jpg", jpeg_bytes(Image.new("CMYK", (60, 40), (0, 255, 255, 0))))
    red = thumb_of(process_photo(path)).getpixel((30, 20))
    assert red[0] > 200 and red[1] < 60 and red[2] < 60


def test_phash_is_stable_under_recompression_and_tells_photos_apart(tmp_path, photos):
    original = process_photo(photos / "DSCN0010.jpg")
    again = write(tmp_path, "again.jpg", jpeg_bytes(Image.open(photos / "DSCN0010.jpg"), quality=40))
    assert hamming(original.phash, process_photo(again).phash) <= 6
    other = process_photo(photos / "DSCN0040.jpg")
    assert hamming(original.phash, other.phash) > 12
    assert len(original.phash) == 16 and int(original.phash, 16) >= 0


def test_hamming():
    assert hamming("0" * 16, "f" * 16) == 64
    assert hamming("00000000000000ff", "0000000000000000") == 8
    assert hamming("abcdefABCDEF0123", "abcdefabcdef0123") == 0
    for bad in ("", "0" * 15, "0" * 17, "g" * 16, "0" * 15 + "\n"):
        with pytest.raises(ValueError):
            hamming(bad, "0" * 16)


def test_error_codes_have_messages_in_both_languages():
    for code in ("photo_empty", "photo_unsupported_format", "photo_corrupt", "photo_too_large_pixels"):
        zh, en = MESSAGES[code]
        assert zh and en and zh != en
    assert PhotoRejected("photo_empty").status == 422


def test_missing_file_is_not_a_photo_rejection(tmp_path):
    with pytest.raises(FileNotFoundError):
        process_photo(tmp_path / "nope.jpg")


# --- the display copy kept as uploaded -------------------------------------------------------------


def decoded(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as img:
        return img.convert("RGB").tobytes()


def segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def canvas_jpeg(photos: Path, size=(1600, 1200), quality=82, **params) -> bytes:
    """What the PWA uploads: a real photo drawn at display size and encoded by the canvas at 0.82 (no
    metadata). This detailed photo weighs 2.1 bits a pixel (at 0.95, 4.1: that one would be re-encoded)."""
    with Image.open(photos / "corrupted.jpg") as src:
        return jpeg_bytes(src.convert("RGB").resize(size), quality=quality, **params)


@pytest.mark.parametrize("params", [{}, {"progressive": True}, {"restart_marker_blocks": 4},
                                    {"subsampling": 0, "quality": 75}])
def test_a_display_sized_upright_jpeg_keeps_its_own_image(tmp_path, photos, params):
    data = canvas_jpeg(photos, **params)
    result = process_photo(write(tmp_path, "pwa.jpg", data))
    assert_bare_jpeg(result.display)
    # The same compressed image, not a second lossy generation: every pixel decodes the same.
    assert decoded(result.display) == decoded(data)
    assert len(data) - 20 <= len(result.display) <= len(data)
    assert result.display_size == (result.width, result.height) == (1600, 1200)
    assert result.thumb_size == (320, 240)
    assert result.decoded_size == (400, 300)  # only the thumbnail's pixels, at 1/4 by DCT scaling
    # The thumbnail, from the 1/4-scale decode, is the photo's: as a full decode scaled down shows it.
    with Image.open(io.BytesIO(data)) as full:
        reference = full.convert("RGB").resize((320, 240), Image.Resampling.LANCZOS)
    assert mean_abs_diff(thumb_of(result), reference) < 5.6  # the re-encoding path's: 5.05 (bilinear: 6.2)
    unkept = process_photo(write(tmp_path, "unkept.jpg", canvas_jpeg(photos, size=(1601, 1201))))
    assert hamming(result.phash, unkept.phash) <= 4


def test_a_kept_display_copy_has_no_metadata_and_nothing_after_its_end(tmp_path, photos):
    # A Nikon's EXIF (GPS, maker, maker notes) on a light 1200 x 900 image: the Nikon's own 640 x 480 JPEGs
    # weigh 4 bits a pixel and would be re-encoded.
    exif = next(payload for marker, payload in jpeg_markers((photos / "DSCN0010.jpg").read_bytes())
                if marker == 0xE1 and payload.startswith(b"Exif"))
    plain = canvas_jpeg(photos, size=(1200, 900))
    camera = plain[:2] + segment(0xE1, exif) + plain[2:]
    extra = (segment(0xE1, b"http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta>secret place</x:xmpmeta>")
             + segment(0xE2, b"ICC_PROFILE\x00\x01\x01" + bytes(128))
             + segment(0xFE, b"note: the reporter's phone number"))
    data = camera[:2] + extra + camera[2:] + b"\xff\xff<html><script>alert(1)</script></html>"
    result = process_photo(write(tmp_path, "camera.jpg", data))
    assert_bare_jpeg(result.display)
    for needle in (b"secret place", b"phone number", b"<script", b"NIKON", b"GPS"):
        assert needle not in result.display
    assert decoded(result.display) == decoded(plain)
    assert result.decoded_size == (600, 450)  # at 1/2: at 1/4 it would be smaller than the thumbnail
    assert result.exif_lat == pytest.approx(43.467, abs=0.01) and result.camera  # read from the original


def test_a_heavy_or_unclear_jpeg_is_re_encoded(tmp_path, photos):
    # More than 3 bits a pixel: the display copy is made lighter, not kept.
    heavy = jpeg_bytes(_noise((800, 600), 7), quality=100)
    assert len(heavy) * 8 > 3 * 800 * 600
    result = process_photo(write(tmp_path, "heavy.jpg", heavy))
    assert_bare_jpeg(result.display)
    assert len(result.display) < len(heavy) / 2 and result.decoded_size == (800, 600)
    # Components stored as R, G, B with only an Adobe segment to say so: dropping that segment (as a kept
    # copy would) or adding a JFIF header would turn the colours; so it is decoded and re-encoded.
    rgb = jpeg_bytes(Image.new("RGB", (64, 48), (220, 20, 30)), keep_rgb=True, quality=95)
    assert b"Adobe" in rgb
    adobe = rgb.index(b"\xff\xee")
    bare_rgb = rgb[:adobe] + rgb[adobe + 2 + struct.unpack(">H", rgb[adobe + 2:adobe + 4])[0]:]
    for name, data in (("adobe.jpg", rgb), ("rgb-ids.jpg", bare_rgb)):
        out = process_photo(write(tmp_path, name, data))
        assert_bare_jpeg(out.display)
        red = Image.open(io.BytesIO(out.display)).convert("RGB").getpixel((32, 24))
        assert red[0] > 190 and red[1] < 60 and red[2] < 60, (name, red)


@pytest.mark.parametrize("cut", ["no end of image", "a cut-off segment", "a marker out of place"])
def test_a_jpeg_the_stripper_cannot_follow_is_refused(tmp_path, photos, cut):
    from app.media.pipeline import _strip_jpeg

    data = canvas_jpeg(photos, size=(400, 300))
    assert _strip_jpeg(data, 400 * 300) is not None
    broken = {
        "no end of image": data[:-2],
        "a cut-off segment": data[:40],
        "a marker out of place": data[:2] + b"\xff\xd8" + data[2:],
    }[cut]
    assert _strip_jpeg(broken, 400 * 300) is None
    assert rejected(write(tmp_path, "x.jpg", broken)) == "photo_corrupt"


# --- fuzzing ----------------------------------------------------------------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402 (the fuzzing part of the file)
from hypothesis import strategies as st  # noqa: E402

_FUZZ_SETTINGS = settings(max_examples=120, deadline=None, derandomize=True, database=None,
                          suppress_health_check=[HealthCheck.too_slow])


def _exif_payload_span(data: bytes) -> tuple[int, int]:
    """Where the TIFF structure inside the APP1 Exif segment starts and ends."""
    pos = 2
    while True:
        length = struct.unpack(">H", data[pos + 2:pos + 4])[0]
        if data[pos + 1] == 0xE1 and data[pos + 4:pos + 10] == b"Exif\x00\x00":
            return pos + 10, pos + 2 + length
        pos += 2 + length


@_FUZZ_SETTINGS
@given(seed=st.sampled_from(["Canon_40D.jpg", "DSCN0010.jpg", "HMD_Nokia_8.3_5G.jpg"]),
       edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=40))
def test_damage_inside_exif_never_refuses_a_photo(photos, seed, edits):
    data = bytearray((photos / seed).read_bytes())
    start, end = _exif_payload_span(bytes(data))
    for where, value in edits:
        data[start + int(where * (end - start))] = value
    with tempfile.TemporaryDirectory() as tmp:
        result = process_photo(write(Path(tmp), "x.jpg", bytes(data)))
    assert result.format == "JPEG" and result.thumb and result.display


@_FUZZ_SETTINGS
@given(seed=st.sampled_from(["jpeg", "png", "webp", "heif"]),
       edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=16),
       cut=st.one_of(st.none(), st.floats(0, 1)))
def test_damaged_files_are_accepted_or_refused_never_anything_else(photos, seed, edits, cut):
    data = bytearray(_small_seeds(photos)[seed])
    for where, value in edits:
        data[int(where * len(data))] = value
    if cut is not None:
        del data[int(cut * len(data)):]
    with tempfile.TemporaryDirectory() as tmp:
        try:
            result = process_photo(write(Path(tmp), "x.bin", bytes(data)))
        except PhotoRejected as exc:
            assert exc.code in ("photo_empty", "photo_unsupported_format", "photo_corrupt",
                                "photo_too_large_pixels")
        else:
            assert_bare_jpeg(result.display)


_SEEDS: dict[str, bytes] = {}


def _small_seeds(photos: Path) -> dict[str, bytes]:
    if not _SEEDS:
        with Image.open(photos / "landscape_6.jpg") as src:
            small = src.resize((96, 72))
        for fmt in ("PNG", "WEBP"):
            buf = io.BytesIO()
            small.save(buf, fmt)
            _SEEDS[fmt.lower()] = buf.getvalue()
        _SEEDS["jpeg"] = (photos / "Canon_40D.jpg").read_bytes()
        _SEEDS["heif"] = (photos / "samplefilehub.heif").read_bytes()
    return _SEEDS


# --- encoding into the thread's memory file ---------------------------------------------------------


def _noise(size: tuple[int, int], seed: int) -> Image.Image:
    import random

    rng = random.Random(seed)
    return Image.frombytes("RGB", size, bytes(rng.getrandbits(8) for _ in range(size[0] * size[1] * 3)))


def test_a_small_encode_after_a_large_one_carries_no_stale_tail(monkeypatch):
    """The scratch file is written over, never truncated: each derivative must be exactly its own bytes."""
    from app.media import pipeline

    big, small = _noise((640, 480), 1), _noise((40, 30), 2)
    via_scratch = [pipeline._encode_jpeg(big.copy()), pipeline._encode_jpeg(small.copy())]
    assert pipeline._scratch_file() is not None  # Linux: the memfd path is the one under test
    monkeypatch.setattr(pipeline, "_scratch_file", lambda: None)
    via_bytes = [pipeline._encode_jpeg(big.copy()), pipeline._encode_jpeg(small.copy())]
    assert via_scratch == via_bytes
    assert len(via_scratch[1]) < len(via_scratch[0]) and via_scratch[1].endswith(b"\xff\xd9")
    assert Image.open(io.BytesIO(via_scratch[1])).size == (40, 30)


def test_threads_encode_at_once_each_into_its_own_file():
    """Several threads encoding at once (a gthread worker's photos) each get their own image back."""
    from concurrent.futures import ThreadPoolExecutor

    from app.media import pipeline

    images = [_noise((200 + 10 * i, 150), i) for i in range(8)]
    expected = []
    for img in images:
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=pipeline.JPEG_QUALITY, optimize=False, progressive=False)
        expected.append(buf.getvalue())
    with ThreadPoolExecutor(4) as pool:
        for _ in range(3):
            assert list(pool.map(lambda img: pipeline._encode_jpeg(img.copy()), images)) == expected


def test_a_forked_child_encodes_into_a_file_of_its_own():
    """A worker forked from a process that had encoded gets its own scratch file, not the parent's."""
    import multiprocessing
    import os

    from app.media import pipeline

    pipeline._encode_jpeg(_noise((64, 48), 3))
    parent = os.fstat(pipeline._scratch_file().fileno()).st_ino

    def child(queue):
        data = pipeline._encode_jpeg(_noise((32, 24), 4))
        queue.put((os.fstat(pipeline._scratch_file().fileno()).st_ino, Image.open(io.BytesIO(data)).size))

    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=child, args=(queue,))
    proc.start()
    inode, size = queue.get(timeout=30)
    proc.join(30)
    assert proc.exitcode == 0 and size == (32, 24)
    assert inode != parent
    assert os.fstat(pipeline._scratch_file().fileno()).st_ino == parent  # the parent keeps its own
