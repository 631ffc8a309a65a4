// Resizes and hashes photos off the main thread (see photo.js).
import { preparePhoto } from "./photo.js";

self.onmessage = async ({ data }) => {
  try {
    self.postMessage({ id: data.id, result: await preparePhoto(data.file) });
  } catch (e) {
    self.postMessage({ id: data.id, error: String(e && e.message || e) });
  }
};
