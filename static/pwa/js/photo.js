// Photo preparation on the phone: EXIF first (time and GPS, lost on re-encoding), then resized to a long
// side of about 1600 px as JPEG, then its sha256 (the name the server knows it by). Runs in a Web Worker
// (photo-worker.js) where OffscreenCanvas exists, on the page otherwise.
import { readExif } from "./core/exif.js";

export const LONG_SIDE = 1600;
const QUALITY = 0.82;

export async function sha256Hex(buffer) {
  const digest = await crypto.subtle.digest("SHA-256", buffer);
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

async function encode(bitmap, w, h) {
  if (typeof OffscreenCanvas !== "undefined") {
    const canvas = new OffscreenCanvas(w, h);
    canvas.getContext("2d").drawImage(bitmap, 0, 0, w, h);
    return canvas.convertToBlob({ type: "image/jpeg", quality: QUALITY });
  }
  const canvas = document.createElement("canvas");
  canvas.width = w; canvas.height = h;
  canvas.getContext("2d").drawImage(bitmap, 0, 0, w, h);
  return new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", QUALITY));
}

/** {blob, sha256, width, height, exif, resized} for one picked file. A file the browser cannot decode
 * (HEIC on most Androids) is kept as it is: the server converts it. */
export async function preparePhoto(file) {
  const original = await file.arrayBuffer();
  const exif = readExif(original);
  let blob = file;
  let width = null, height = null, resized = false;
  try {
    const bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
    const scale = Math.min(1, LONG_SIDE / Math.max(bitmap.width, bitmap.height));
    width = Math.round(bitmap.width * scale); height = Math.round(bitmap.height * scale);
    const out = await encode(bitmap, width, height);
    bitmap.close?.();
    if (out && (scale < 1 || out.size < file.size)) { blob = out; resized = true; }
  } catch (e) {
    console.warn("photo kept as taken:", e);
  }
  const bytes = blob === file ? original : await blob.arrayBuffer();
  return { blob: new Blob([bytes], { type: blob.type || "image/jpeg" }), sha256: await sha256Hex(bytes), width, height, exif, resized,
    size: bytes.byteLength, name: file.name || "" };
}

let worker = null;
let seq = 0;
const waiting = new Map();

/** Prepare a photo off the main thread when the browser can; same answer either way. */
export function preparePhotoAsync(file) {
  if (typeof Worker === "undefined" || typeof OffscreenCanvas === "undefined") return preparePhoto(file);
  if (!worker) {
    try {
      worker = new Worker(new URL("./photo-worker.js", import.meta.url), { type: "module" });
      worker.onmessage = ({ data }) => {
        const w = waiting.get(data.id);
        waiting.delete(data.id);
        if (w) data.error ? w.reject(new Error(data.error)) : w.resolve(data.result);
      };
      worker.onerror = () => { for (const [, w] of waiting) w.reject(new Error("worker failed")); waiting.clear(); worker = null; };
    } catch { return preparePhoto(file); }
  }
  const id = ++seq;
  return new Promise((resolve, reject) => { waiting.set(id, { resolve, reject }); worker.postMessage({ id, file }); })
    .catch(() => preparePhoto(file));
}
