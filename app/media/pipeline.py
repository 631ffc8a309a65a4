"""Photo intake: decide whether an uploaded file is a photo we accept, read what its EXIF says, and make
clean derivatives (a thumbnail and a display copy) that carry no metadata at all.

Framework-free on purpose (no Flask here), so it can be benchmarked and fuzzed on its own. Every input is
untrusted: the format is decided by magic bytes from an allowlist, never by the file name; the pixel count
is capped before anything is decoded; truncated and corrupt files are refused with ``PhotoRejected``; EXIF
is best effort and never makes a sound photo fail.
"""

from __future__ import annotations

import io
import logging
import math
import os
import re
import struct
import threading
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import pillow_heif
from PIL import Image, ImageFile, PngImagePlugin

from app.errors import DomainError

log = logging.getLogger(__name__)

pillow_heif.register_heif_opener()

# Text chunks are the one place a PNG can make Pillow read or inflate a lot before any pixel: a zTXt
# bomb stops at MAX_TEXT_CHUNK, and all text in a file together at MAX_TEXT_MEMORY (Pillow's default is
# 64 MiB; a phone photo carries a few KiB of XMP at most). Both raise ValueError, refused as corrupt.
PngImagePlugin.MAX_TEXT_CHUNK = 1024 * 1024
PngImagePlugin.MAX_TEXT_MEMORY = 4 * 1024 * 1024

THUMB_SIZE = 320  # long side, px: a row in the review queue, two per screen width on a phone
DISPLAY_SIZE = 1600  # long side, px: enough to read a meter or a crack on a laptop, ~300 KB
JPEG_QUALITY = 82

# sniff_format() name -> the Pillow plugin allowed to decode it (one each: a PNG must parse as a PNG).
_PIL_FORMAT = {"JPEG": "JPEG", "PNG": "PNG", "WEBP": "WEBP", "HEIF": "HEIF"}
_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"mif1", b"msf1", b"heif"}
_HEVC_BRANDS = {b"heic", b"heix", b"hevc"}  # HEVC-coded, so image/heic rather than generic image/heif
_MIME = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "HEIF": "image/heif"}

# What a decoder throws on a file that lies about itself.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, Image.UnidentifiedImageError)

# EXIF Orientation -> the transpose that makes the pixels upright (as ImageOps.exif_transpose does).
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

_TAG_ORIENTATION = 0x0112
_TAG_MAKE = 0x010F
_TAG_MODEL = 0x0110
_IFD_EXIF = 0x8769
_IFD_GPS = 0x8825
_TAG_DATETIME_ORIGINAL = 0x9003
_TAG_OFFSET_TIME_ORIGINAL = 0x9011
_GPS_LAT_REF, _GPS_LAT, _GPS_LON_REF, _GPS_LON, _GPS_STATUS = 1, 2, 3, 4, 9


class PhotoRejected(DomainError):
    """The upload is not a photo we accept; ``code`` says why (photo_empty, photo_unsupported_format,
    photo_corrupt, photo_too_large_pixels)."""

    status = 422
    code = "photo_corrupt"


@dataclass(frozen=True, slots=True)
class ProcessedPhoto:
    """What one accepted photo yields: facts about the original and two metadata-free JPEG derivatives."""

    format: str  # "JPEG", "PNG", "WEBP" or "HEIF", from the bytes
    mime: str  # of the original
    width: int  # upright, of the original
    height: int
    orientation: int | None  # EXIF Orientation of the original, 1..8
    exif_time: datetime | None  # DateTimeOriginal; aware when OffsetTimeOriginal is present, else naive
    exif_lat: float | None  # WGS-84 degrees, as the camera wrote them
    exif_lon: float | None
    camera: str | None  # "make model"
    phash: str  # 64-bit dHash of the thumbnail, 16 hex digits
    thumb: bytes = field(repr=False)
    display: bytes = field(repr=False)
    thumb_size: tuple[int, int] = (0, 0)
    display_size: tuple[int, int] = (0, 0)
    # The pixels actually decoded: well under width x height when JPEG DCT scaling (draft) did its job.
    decoded_size: tuple[int, int] = (0, 0)
    # The display copy is the original, byte for byte (a clean upload, as the PWA's canvas makes): stored
    # once, under the original's key.
    display_is_original: bool = False


@dataclass(slots=True)
class _Exif:
    orientation: int | None = None
    time: datetime | None = None
    lat: float | None = None
    lon: float | None = None
    camera: str | None = None


def sniff_format(first_bytes: bytes) -> str | None:
    """The allowlisted format the leading bytes announce ("JPEG", "PNG", "WEBP", "HEIF"), else None.

    Looks at the magic numbers only, so SVG, PDF, EPS or HTML renamed .jpg are refused before any decoder
    runs. Pass at least the first 12 bytes. Raises nothing.
    """
    head = bytes(first_bytes[:16])
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if len(head) >= 12 and head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS:
        return "HEIF"
    return None


def hamming(a_hex: str, b_hex: str) -> int:
    """Bits that differ between two 64-bit perceptual hashes. Raises ValueError unless both are 16 hex digits."""
    for value in (a_hex, b_hex):
        if not re.fullmatch(r"[0-9a-fA-F]{16}", value or ""):
            raise ValueError(f"not a 64-bit hex hash: {value!r}")
    return (int(a_hex, 16) ^ int(b_hex, 16)).bit_count()


def process_photo(path: str | os.PathLike, *, max_pixels: int = 50_000_000, draft: bool = True) -> ProcessedPhoto:
    """Check, read and re-encode the photo at ``path``.

    Raises PhotoRejected (422) with code photo_empty, photo_unsupported_format, photo_too_large_pixels or
    photo_corrupt; FileNotFoundError if there is no such file; RuntimeError if something in the process
    has turned PIL's LOAD_TRUNCATED_IMAGES on. ``draft=False`` turns JPEG DCT scaling off (only the
    benchmark wants that). The effective pixel cap is min(max_pixels, PIL.Image.MAX_IMAGE_PIXELS).
    """
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        # Process-wide switch; with it on, Pillow pads a cut-off upload with grey and calls it a photo.
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES must stay False for photo intake")
    with open(path, "rb") as fh:
        head = fh.read(16)
        if not head:
            raise PhotoRejected("photo_empty")
        kind = sniff_format(head)
        if kind is None:
            raise PhotoRejected("photo_unsupported_format")
        if kind == "HEIF" and not _isobmff_complete(fh):
            # libheif fills the tiles of a cut-off file with green and reports success.
            raise PhotoRejected("photo_corrupt")
        fh.seek(0)
        # Pillow only warns between MAX_IMAGE_PIXELS and twice that; we want a refusal. catch_warnings is
        # process-wide before Python 3.14, so a thread racing here may lose the filter for a moment; the
        # explicit width*height check below is what actually enforces the cap.
        with warnings.catch_warnings():
            # Pillow warns (UserWarning) about every broken EXIF tag; those files are accepted on purpose,
            # so the warnings are noise in the logs (and would become errors under a strict filter).
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            try:
                return _process(fh, kind, head, max_pixels=max_pixels, draft=draft)
            except PhotoRejected:
                raise
            except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
                raise PhotoRejected("photo_too_large_pixels") from exc
            except _DECODE_ERRORS as exc:
                raise PhotoRejected("photo_corrupt") from exc
            except MemoryError as exc:
                raise PhotoRejected("photo_too_large_pixels") from exc
            except Exception as exc:
                # Decoders are third-party code fed hostile bytes: whatever else they throw is still "this
                # file is bad", which must be a 422, never a 500. Logged so a fuzzer finding shows up.
                log.warning("photo decoder raised %s; refused as corrupt", type(exc).__name__, exc_info=True)
                raise PhotoRejected("photo_corrupt") from exc


def _process(fh: io.BufferedReader, kind: str, head: bytes, *, max_pixels: int, draft: bool) -> ProcessedPhoto:
    with Image.open(fh, formats=[_PIL_FORMAT[kind]]) as img:
        width, height = img.size
        if width <= 0 or height <= 0:
            raise PhotoRejected("photo_corrupt")
        # Only the header has been read so far: refuse before the decoder allocates anything.
        if width * height > max_pixels:
            raise PhotoRejected("photo_too_large_pixels")

        meta = _read_exif(img)  # before anything is stripped; never raises
        upright_transpose = _TRANSPOSE.get(meta.orientation or 1)
        if kind == "HEIF":
            # libheif has already applied the container's rotation and pillow-heif reset the tag to 1;
            # report what the camera wrote, but do not rotate twice.
            original = img.info.get("original_orientation")
            meta.orientation = original if isinstance(original, int) and 1 <= original <= 8 else meta.orientation
            upright_transpose = None
        if upright_transpose in (Image.Transpose.TRANSPOSE, Image.Transpose.TRANSVERSE,
                                 Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_270):
            width, height = height, width

        # A JPEG that is already upright and display-sized (what the PWA uploads: its canvas re-encodes to
        # 1600 px) keeps its own compressed image as the display copy, with every segment but the codec's
        # dropped: no second lossy generation, and no decode and re-encode at full size (~10 of ~13 ms).
        # Only the thumbnail needs pixels, and DCT scaling decodes those at 1/4 or 1/8 for ~3 ms; every
        # byte of the scans is still Huffman-decoded, so a truncated or corrupt file is refused the same.
        kept = data = None
        if kind == "JPEG" and upright_transpose is None and max(width, height) <= DISPLAY_SIZE and img.mode == "RGB":
            data = os.pread(fh.fileno(), _MAX_KEPT_DISPLAY_BYTES + 1, 0)
            kept = _strip_jpeg(data, width * height)
        if kept is not None:
            return _thumb_only(img, kind, meta, width, height, kept, draft=draft, same=kept == data)

        # Only JPEG gets draft(): pillow-heif's draft() may hand back the embedded thumbnail, which
        # need not show what the full image shows.
        if draft and kind == "JPEG":
            # DCT scaling: libjpeg decodes at 1/2, 1/4 or 1/8 scale for almost nothing, so a 12 MP photo is
            # decoded at ~3 MP. Ask for the aspect-preserving display size: draft() keeps every side at or
            # above the request, so a square request would stop a 4:3 photo from being scaled at all.
            scale = DISPLAY_SIZE / max(img.size)
            if scale < 1:
                img.draft("RGB", (max(1, math.ceil(img.width * scale)), max(1, math.ceil(img.height * scale))))
        img.load()  # Pillow raises OSError on a truncated file while ImageFile.LOAD_TRUNCATED_IMAGES is False
        decoded_size = img.size

        rgb = _to_rgb(img)
        # Bilinear: Pillow's downscaling filters are antialiased, and at the <= 2x ratio left after DCT
        # scaling bilinear looks the same as bicubic at about half the cost (the biggest step after the
        # decode). reducing_gap lets a full-size decode (PNG, HEIF, --no-draft) be box-reduced first.
        display = _shrink(rgb, DISPLAY_SIZE, Image.Resampling.BILINEAR, reducing_gap=2.0)
        if upright_transpose is not None:
            display = display.transpose(upright_transpose)  # on the small copy: cheaper than on the decode
        # A 320 px thumbnail is mostly an area average anyway: box-reduce by the whole factor first
        # (reducing_gap=1), a fifth of the cost of a bicubic pass over the display copy.
        thumb = _shrink(display, THUMB_SIZE, Image.Resampling.BICUBIC, reducing_gap=1.0)
        # Encoded inside the with-block: ``display`` may still be the file's own image, which closing frees.
        thumb_jpeg, display_jpeg = _encode_jpeg(thumb), _encode_jpeg(display)
        phash = _dhash(thumb)
        thumb_size, display_size = thumb.size, display.size

    mime = "image/heic" if kind == "HEIF" and head[8:12] in _HEVC_BRANDS else _MIME[kind]
    return ProcessedPhoto(
        format=kind,
        mime=mime,
        width=width,
        height=height,
        orientation=meta.orientation,
        exif_time=meta.time,
        exif_lat=meta.lat,
        exif_lon=meta.lon,
        camera=meta.camera,
        phash=phash,
        thumb=thumb_jpeg,
        display=display_jpeg,
        thumb_size=thumb_size,
        display_size=display_size,
        decoded_size=decoded_size,
    )


def _thumb_only(img: Image.Image, kind: str, meta: _Exif, width: int, height: int, display: bytes,
                *, draft: bool, same: bool) -> ProcessedPhoto:
    """The rest of ``_process`` for a JPEG whose display copy is ``display``: its own bytes, stripped
    (``same``: there was nothing to strip)."""
    scale = THUMB_SIZE / max(img.size)
    if draft and scale < 1:
        img.draft("RGB", (max(1, math.ceil(img.width * scale)), max(1, math.ceil(img.height * scale))))
    img.load()
    decoded_size = img.size
    # Bicubic: from the 1/4 decode of a detailed photo, bilinear leaves visibly more aliasing (mean error
    # 6.2 levels against a Lanczos scaling of the full decode, bicubic 5.1, as the re-encoding path).
    thumb = _shrink(_to_rgb(img), THUMB_SIZE, Image.Resampling.BICUBIC, reducing_gap=2.0)
    thumb_jpeg, phash = _encode_jpeg(thumb), _dhash(thumb)
    return ProcessedPhoto(
        format=kind, mime=_MIME[kind], width=width, height=height, orientation=meta.orientation,
        exif_time=meta.time, exif_lat=meta.lat, exif_lon=meta.lon, camera=meta.camera, phash=phash,
        thumb=thumb_jpeg, display=display, thumb_size=thumb.size, display_size=(width, height),
        decoded_size=decoded_size, display_is_original=same,
    )


# --- JPEG kept as it is, less its metadata ------------------------------------------------------------

# What the display copy may weigh when it is the upload's own image: 3 bits a pixel (a phone's canvas at
# quality 0.9 is about 1.5; our own re-encode at 82 about 1), and never more than this. Heavier files are
# re-encoded, so a display copy stays light on a phone's data plan.
_KEPT_BITS_PER_PIXEL = 3
_MAX_KEPT_DISPLAY_BYTES = DISPLAY_SIZE * DISPLAY_SIZE * _KEPT_BITS_PER_PIXEL // 8
# The JFIF header Pillow's encoder writes too (version 1.1, no density unit, 1:1, no thumbnail): it tells
# every decoder the three components are YCbCr, as they were in a file that had it or numbered them 1-3.
_JFIF_APP0 = b"\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
_SOF_KEPT = (0xC0, 0xC2)  # baseline and progressive, Huffman-coded: what every browser shows
_CODEC_KEPT = (0xC4, 0xDB, 0xDD)  # DHT, DQT, DRI
# Where a scan's entropy-coded data ends: a 0xFF that is not a stuffed 0x00, a restart marker or fill.
_SCAN_END = re.compile(rb"\xff(?![\x00\xd0-\xd7\xff])")


# complexity: one pass over the file's segments, one branch per kind of marker, as the JPEG standard lists
# them; split up, the parser's state (offset, what was seen) would travel through every piece.
def _strip_jpeg(data: bytes, pixels: int) -> bytes | None:
    """The JPEG in ``data`` rebuilt from the segments a decoder needs (a JFIF header, DQT, DHT, DRI, SOF,
    the scans) up to its EOI: no APPn (EXIF, XMP, ICC, MPF, ...), no comment, nothing after the end. A
    file that has nothing else comes back equal to ``data`` (its own JFIF header is kept when it carries
    no thumbnail).

    None when the result would be anything but a plain 8-bit YCbCr JPEG of at most 3 bits a pixel: other
    coding processes (lossless, hierarchical, arithmetic), an Adobe segment (its colour transform would be
    lost), components not numbered as YCbCr without a JFIF header to say so, a layout this parser does not
    know, or no EOI. The caller re-encodes those. Raises nothing.
    """
    if not data.startswith(b"\xff\xd8") or len(data) > min(_MAX_KEPT_DISPLAY_BYTES, pixels * _KEPT_BITS_PER_PIXEL // 8):
        return None
    out = [b"\xff\xd8", _JFIF_APP0]
    pos, end, jfif, sof, scans = 2, len(data), False, None, 0
    while True:
        if pos >= end or data[pos] != 0xFF:
            return None
        while pos < end and data[pos] == 0xFF:  # fill bytes may precede any marker
            pos += 1
        if pos >= end:
            return None
        marker = data[pos]
        if marker == 0xD9:  # EOI: whatever follows (a zip, HTML) is not the image's
            break
        if pos + 2 >= end:
            return None
        length = int.from_bytes(data[pos + 1:pos + 3], "big")
        if length < 2 or pos + 1 + length > end:
            return None
        body = data[pos + 3:pos + 1 + length]
        segment = b"\xff" + data[pos:pos + 1 + length]
        pos += 1 + length
        if 0xE0 <= marker <= 0xEF or marker == 0xFE:  # APPn and COM: metadata, dropped
            if marker == 0xE0 and body.startswith(b"JFIF\x00"):
                if not jfif and len(body) == 14 and body[12:14] == b"\x00\x00":  # no thumbnail: keep it
                    out[1] = segment
                jfif = True
            elif marker == 0xEE and body.startswith(b"Adobe"):
                return None
            continue
        if marker in _CODEC_KEPT:
            out.append(segment)
        elif marker in _SOF_KEPT:
            if sof is not None or len(body) < 6 or body[0] != 8:
                return None
            sof = body
            out.append(segment)
        elif marker == 0xDA:  # SOS: its header, then the entropy-coded data up to the next marker
            match = _SCAN_END.search(data, pos) if sof is not None else None
            if match is None:
                return None
            out.append(segment)
            out.append(data[pos:match.start()])
            pos, scans = match.start(), scans + 1
        else:  # SOF1/3/5-15, DAC, DNL, DHP, EXP, JPGn, a stray RST, SOI or TEM
            return None
    if sof is None or not scans or sof[5] != 3 or len(sof) < 6 + 3 * 3:
        return None
    if not jfif and tuple(sof[6:15:3]) != (1, 2, 3):
        return None  # e.g. "R", "G", "B": without JFIF a decoder would take them as RGB, with ours as YCbCr
    out.append(b"\xff\xd9")
    return b"".join(out)


def _isobmff_complete(fh: io.BufferedReader) -> bool:
    """Whether the top-level boxes of an ISO-BMFF (HEIF) file all end within the file: a truncated upload
    cuts the last one short. Trailing bytes that do not parse as a box count as damage too."""
    end = os.fstat(fh.fileno()).st_size
    pos = 0
    for _ in range(10_000):  # real files have a handful of top-level boxes
        if pos == end:
            return True
        fh.seek(pos)
        header = fh.read(16)
        if len(header) < 8:
            return False
        size = struct.unpack(">I", header[:4])[0]
        if size == 0:  # "extends to the end of the file"
            return True
        if size == 1:  # 64-bit size follows the type
            if len(header) < 16:
                return False
            size = struct.unpack(">Q", header[8:16])[0]
            if size < 16:
                return False
        elif size < 8:
            return False
        pos += size
        if pos > end:
            return False
    return False


def _shrink(img: Image.Image, long_side: int, resample: Image.Resampling, *, reducing_gap: float) -> Image.Image:
    """``img`` scaled so its long side is at most ``long_side``, aspect kept; ``img`` itself if it fits."""
    scale = long_side / max(img.size)
    if scale >= 1:
        return img  # never upscale
    size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    return img.resize(size, resample, reducing_gap=reducing_gap)


def _to_rgb(img: Image.Image) -> Image.Image:
    """``img`` as RGB (itself if it already is): alpha flattened on white, 16-bit grey scaled down
    (convert() would clip it to white)."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode.startswith("I;16") or mode in ("I", "F"):
        grey = img.convert("I") if mode.startswith("I;16") else img
        return grey.point(lambda v: v * (1 / 256)).convert("L").convert("RGB")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    try:
        return img.convert("RGB")  # P, L, 1, CMYK, YCbCr
    except ValueError as exc:  # e.g. LAB: no conversion to RGB in Pillow
        raise PhotoRejected("photo_unsupported_format") from exc


def _encode_jpeg(img: Image.Image) -> bytes:
    """A bare JPEG: no EXIF, XMP, ICC or comment, whatever the source carried."""
    # resize() and copy() carry info (exif, xmp, icc_profile, comment) along; drop it all so no later
    # Pillow default can write it back out.
    img.info = {}
    scratch = _scratch_file()
    if scratch is None:
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=JPEG_QUALITY, optimize=False, progressive=False)
        return buf.getvalue()
    # Pillow encodes into an object with a file descriptor without holding the GIL (into a BytesIO it
    # holds it throughout), so the photos of a gthread worker's other requests are encoded at the same
    # time. The thread's scratch file is written over from the start each time: its pages are reused.
    scratch.seek(0)
    img.save(scratch, "JPEG", quality=JPEG_QUALITY, optimize=False, progressive=False)
    size = scratch.tell()
    data = os.pread(scratch.fileno(), size, 0)
    if len(data) != size:  # cannot happen with a memory file; never hand out a short copy
        raise OSError("short read of an encoded derivative")
    return data


_scratch = threading.local()


def _scratch_file() -> io.FileIO | None:
    """This thread's in-memory file (Linux memfd) to encode into, or None where there is none. Made again
    in a forked child (a gunicorn worker forked from a master that had encoded): parent and child would
    otherwise write into the one file."""
    scratch = getattr(_scratch, "file", None)
    if scratch is not None and _scratch.pid != os.getpid():
        scratch = None
    if scratch is None and hasattr(os, "memfd_create"):
        try:
            scratch = _scratch.file = io.FileIO(os.memfd_create("gridcase-jpeg", os.MFD_CLOEXEC), "w+b")
        except OSError:  # e.g. a sandbox without memfd: encode in Python memory instead
            return None
        _scratch.pid = os.getpid()
    return scratch


def _dhash(img: Image.Image) -> str:
    """64-bit difference hash: is each of 8x8 cells brighter than its right neighbour (9x8 grey grid)."""
    grid = img.convert("L").resize((9, 8), Image.Resampling.BOX).tobytes()
    bits = 0
    for row in range(8):
        for col in range(8):
            bits = (bits << 1) | (grid[row * 9 + col] > grid[row * 9 + col + 1])
    return f"{bits:016x}"


# --- EXIF -------------------------------------------------------------------------------------------
# Field EXIF is often broken (the fixtures hold files that crashed or hung other readers). Each field is
# read on its own and any failure yields None for that field only: a sound photo is never refused for it.


def _read_exif(img: Image.Image) -> _Exif:
    out = _Exif()
    try:
        exif = img.getexif()
    except Exception:
        return out
    try:
        value = exif.get(_TAG_ORIENTATION)
        out.orientation = int(value) if value is not None and 1 <= int(value) <= 8 else None
    except Exception:
        pass
    try:
        out.camera = _camera(exif.get(_TAG_MAKE), exif.get(_TAG_MODEL))
    except Exception:
        pass
    try:
        sub = exif.get_ifd(_IFD_EXIF)
        out.time = _exif_time(sub.get(_TAG_DATETIME_ORIGINAL), sub.get(_TAG_OFFSET_TIME_ORIGINAL))
    except Exception:
        pass
    try:
        out.lat, out.lon = _gps(exif.get_ifd(_IFD_GPS))
    except Exception:
        pass
    return out


def _text(value: Any, limit: int = 64) -> str | None:
    """An EXIF ASCII value as clean text: NUL padding, control characters and blanks gone."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    value = "".join(ch for ch in value.split("\x00", 1)[0] if ch.isprintable()).strip()
    return value[:limit] or None


def _camera(make: Any, model: Any) -> str | None:
    make_s, model_s = _text(make), _text(model)
    if make_s and model_s:
        # "Canon" + "Canon EOS 40D", "NIKON CORPORATION" + "NIKON D70s": the model already names the maker.
        if model_s.lower().startswith(make_s.split()[0].lower()):
            return model_s
        return f"{make_s} {model_s}"
    return model_s or make_s


def _exif_time(value: Any, offset: Any) -> datetime | None:
    text = _text(value)
    if not text:
        return None
    try:
        taken = datetime.strptime(text[:19].replace("-", ":", 2), "%Y:%m:%d %H:%M:%S")
    except ValueError:  # "0000:00:00 00:00:00", blanks, garbage
        return None
    match = re.fullmatch(r"([+-])(\d{2}):(\d{2})", _text(offset) or "")
    if match:
        minutes = int(match[2]) * 60 + int(match[3])
        if minutes <= 14 * 60:
            sign = -1 if match[1] == "-" else 1
            taken = taken.replace(tzinfo=timezone(timedelta(minutes=sign * minutes)))
    return taken


def _degrees(value: Any) -> float | None:
    """Degrees from EXIF's (deg, min, sec) rationals; a lone number is taken as decimal degrees."""
    parts = tuple(value) if isinstance(value, (tuple, list)) else (value,)
    if not 1 <= len(parts) <= 3:
        return None
    numbers = [float(p) for p in parts]  # IFDRational with a zero denominator gives nan
    if not all(math.isfinite(n) and n >= 0 for n in numbers):
        return None
    return sum(n / 60**i for i, n in enumerate(numbers))


def _ref(value: Any) -> str | None:
    text = _text(value)
    return text[0].upper() if text else None


def _gps(gps: Any) -> tuple[float | None, float | None]:
    if not gps or _ref(gps.get(_GPS_STATUS)) == "V":  # V: the receiver says the fix is void
        return None, None
    lat, lon = _degrees(gps.get(_GPS_LAT)), _degrees(gps.get(_GPS_LON))
    lat_ref, lon_ref = _ref(gps.get(_GPS_LAT_REF)), _ref(gps.get(_GPS_LON_REF))
    # Without its reference a value could be either hemisphere; a wrong guess would raise false
    # exif_mismatch flags, so an incomplete fix counts as no fix.
    if lat is None or lon is None or lat_ref not in ("N", "S") or lon_ref not in ("E", "W"):
        return None, None
    lat = -lat if lat_ref == "S" else lat
    lon = -lon if lon_ref == "W" else lon
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None, None
    if lat == 0 and lon == 0:  # phones without a fix write zeros
        return None, None
    return lat, lon
