// A tiny EXIF reader for JPEG (APP1 "Exif"): DateTimeOriginal (+ OffsetTimeOriginal), GPS position and
// Orientation. Read before the photo is resized, since re-encoding drops the camera's metadata.

const TAGS = { EXIF_IFD: 0x8769, GPS_IFD: 0x8825, ORIENTATION: 0x0112, DATETIME_ORIGINAL: 0x9003,
  OFFSET_TIME_ORIGINAL: 0x9011, DATETIME: 0x0132 };
const SIZES = { 1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 7: 1, 9: 4, 10: 8 };

function readIfd(view, tiff, offset, little) {
  const out = new Map();
  if (offset < 0 || tiff + offset + 2 > view.byteLength) return out;
  const count = view.getUint16(tiff + offset, little);
  for (let i = 0; i < count; i++) {
    const entry = tiff + offset + 2 + i * 12;
    if (entry + 12 > view.byteLength) break;
    const tag = view.getUint16(entry, little);
    const type = view.getUint16(entry + 2, little);
    const n = view.getUint32(entry + 4, little);
    const size = (SIZES[type] || 1) * n;
    const at = size > 4 ? tiff + view.getUint32(entry + 8, little) : entry + 8;
    if (at + size > view.byteLength) continue;
    out.set(tag, { type, n, at });
  }
  return out;
}

function value(view, e, little) {
  if (!e) return null;
  const { type, n, at } = e;
  if (type === 2) { // ASCII
    let s = "";
    for (let i = 0; i < n; i++) { const c = view.getUint8(at + i); if (!c) break; s += String.fromCharCode(c); }
    return s;
  }
  const vals = [];
  for (let i = 0; i < n; i++) {
    if (type === 3) vals.push(view.getUint16(at + 2 * i, little));
    else if (type === 4) vals.push(view.getUint32(at + 4 * i, little));
    else if (type === 9) vals.push(view.getInt32(at + 4 * i, little));
    else if (type === 5 || type === 10) {
      const get = type === 5 ? "getUint32" : "getInt32";
      const num = view[get](at + 8 * i, little);
      const den = view[get](at + 8 * i + 4, little);
      vals.push(den ? num / den : 0);
    } else vals.push(view.getUint8(at + i));
  }
  return n === 1 ? vals[0] : vals;
}

function degrees(dms, ref) {
  if (!Array.isArray(dms) || dms.length < 3) return null;
  const d = dms[0] + dms[1] / 60 + dms[2] / 3600;
  if (!Number.isFinite(d)) return null;
  return ref === "S" || ref === "W" ? -d : d;
}

function findTiff(view) {
  if (view.byteLength < 4 || view.getUint16(0) !== 0xffd8) return -1;
  let p = 2;
  while (p + 4 <= view.byteLength) {
    const marker = view.getUint16(p);
    if ((marker & 0xff00) !== 0xff00 || marker === 0xffda) return -1; // start of scan: no more headers
    const len = view.getUint16(p + 2);
    if (marker === 0xffe1 && p + 10 <= view.byteLength &&
        view.getUint32(p + 4) === 0x45786966 && view.getUint16(p + 8) === 0) return p + 10; // "Exif\0\0"
    p += 2 + len;
  }
  return -1;
}

/** {taken_at, lat, lon, orientation} from a JPEG's bytes (ArrayBuffer); {} when there is no EXIF.
 * `taken_at` is "YYYY-MM-DDTHH:MM:SS" plus the offset when the camera recorded one. Never throws. */
export function readExif(buffer) {
  try {
    const view = new DataView(buffer);
    const tiff = findTiff(view);
    if (tiff < 0) return {};
    const order = view.getUint16(tiff);
    if (order !== 0x4949 && order !== 0x4d4d) return {};
    const little = order === 0x4949;
    const ifd0 = readIfd(view, tiff, view.getUint32(tiff + 4, little), little);
    const out = {};
    const orientation = value(view, ifd0.get(TAGS.ORIENTATION), little);
    if (orientation) out.orientation = orientation;
    const exifPtr = value(view, ifd0.get(TAGS.EXIF_IFD), little);
    const exif = exifPtr ? readIfd(view, tiff, exifPtr, little) : new Map();
    const raw = value(view, exif.get(TAGS.DATETIME_ORIGINAL), little) || value(view, ifd0.get(TAGS.DATETIME), little);
    const m = typeof raw === "string" && raw.match(/^(\d{4}):(\d{2}):(\d{2})[ T](\d{2}):(\d{2}):(\d{2})/);
    if (m && m[1] !== "0000") {
      const offset = value(view, exif.get(TAGS.OFFSET_TIME_ORIGINAL), little);
      out.taken_at = `${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}` +
        (typeof offset === "string" && /^[+-]\d{2}:\d{2}$/.test(offset) ? offset : "");
    }
    const gpsPtr = value(view, ifd0.get(TAGS.GPS_IFD), little);
    if (gpsPtr) {
      const gps = readIfd(view, tiff, gpsPtr, little);
      const lat = degrees(value(view, gps.get(2), little), value(view, gps.get(1), little));
      const lon = degrees(value(view, gps.get(4), little), value(view, gps.get(3), little));
      if (lat !== null && lon !== null && Math.abs(lat) <= 90 && Math.abs(lon) <= 180 && (lat || lon)) {
        out.lat = Math.round(lat * 1e6) / 1e6;
        out.lon = Math.round(lon * 1e6) / 1e6;
      }
    }
    return out;
  } catch {
    return {};
  }
}
