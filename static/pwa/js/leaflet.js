// Leaflet, loaded the first time a map is drawn (the field map, the console's figures): a classic script
// from vendor/, precached with the shell.
let loading = null;

export function loadLeaflet() {
  if (window.L) return Promise.resolve(window.L);
  if (!loading) {
    loading = new Promise((resolve, reject) => {
      const css = document.createElement("link");
      css.rel = "stylesheet"; css.href = "/vendor/leaflet/leaflet.css";
      document.head.append(css);
      const s = document.createElement("script");
      s.src = "/vendor/leaflet/leaflet.js";
      s.onload = () => resolve(window.L);
      s.onerror = reject;
      document.head.append(s);
    });
  }
  return loading;
}
