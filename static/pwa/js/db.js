// IndexedDB: the outbox, photos (as Blobs), the cases pulled for offline work, cached reference data and
// small settings (tokens, device id, seq counter, sync cursor). One database per origin.
import { openDB } from "../vendor/idb/index.js";

const NAME = "gridcase";
let dbPromise = null;

export function db() {
  if (!dbPromise) {
    dbPromise = openDB(NAME, 1, {
      upgrade(d) {
        d.createObjectStore("meta");
        const outbox = d.createObjectStore("outbox", { keyPath: "id" });
        outbox.createIndex("state", "state");
        d.createObjectStore("photos", { keyPath: "sha256" });
        d.createObjectStore("cases", { keyPath: "id" });
        d.createObjectStore("cache");
      },
      blocking() { dbPromise?.then((x) => x.close()); dbPromise = null; },
    });
  }
  return dbPromise;
}

export async function getMeta(key) { return (await db()).get("meta", key); }
export async function setMeta(key, value) { return (await db()).put("meta", value, key); }
export async function delMeta(key) { return (await db()).delete("meta", key); }

/** This installation's device id: a UUID made on first run and kept for good (it binds the login). */
export async function deviceId() {
  const d = await db();
  const tx = d.transaction("meta", "readwrite");
  let id = await tx.store.get("device_id");
  if (!id) { id = crypto.randomUUID(); await tx.store.put(id, "device_id"); }
  await tx.done;
  return id;
}

/** The next op seq of this device, monotonic across tabs (an IndexedDB transaction is atomic). */
export async function nextSeq() {
  const d = await db();
  const tx = d.transaction("meta", "readwrite");
  const seq = ((await tx.store.get("seq")) || 0) + 1;
  await tx.store.put(seq, "seq");
  await tx.done;
  return seq;
}

export async function allItems() { return (await db()).getAll("outbox"); }
export async function getItem(id) { return (await db()).get("outbox", id); }
export async function putItems(items) {
  const tx = (await db()).transaction("outbox", "readwrite");
  await Promise.all([...items.map((i) => tx.store.put(i)), tx.done]);
}
export async function deleteItem(id) { return (await db()).delete("outbox", id); }

export async function putPhoto(p) { return (await db()).put("photos", p); }
/** Several photo records in one transaction (one commit instead of one per photo). */
export async function putPhotos(list) {
  const tx = (await db()).transaction("photos", "readwrite");
  await Promise.all([...list.map((p) => tx.store.put(p)), tx.done]);
}
export async function getPhoto(sha) { return (await db()).get("photos", sha); }
export async function allPhotos() { return (await db()).getAll("photos"); }
export async function deletePhoto(sha) { return (await db()).delete("photos", sha); }

export async function allCases() { return (await db()).getAll("cases"); }
export async function getCase(id) { return (await db()).get("cases", id); }
export async function putCase(c) { return (await db()).put("cases", c); }
export async function deleteCase(id) { return (await db()).delete("cases", id); }
export async function clearCases() { return (await db()).clear("cases"); }

export async function getCached(key) { return (await db()).get("cache", key); }
export async function setCached(key, value) { return (await db()).put("cache", value, key); }
