#!/usr/bin/env bash
# Copy the PWA's front-end libraries (pinned in package.json / package-lock.json) into static/pwa/vendor/,
# each with its LICENSE. The result is committed, so running or deploying the app needs no npm and no CDN.
# Run it again after changing a version in package.json:  scripts/vendor.sh
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -f package-lock.json ]]; then npm ci --no-audit --no-fund --ignore-scripts; else npm install --no-audit --no-fund --ignore-scripts; fi

VENDOR=static/pwa/vendor
rm -rf "$VENDOR"
mkdir -p "$VENDOR/idb" "$VENDOR/leaflet/images"

# idb: the ES module build (one self-contained file)
cp node_modules/idb/build/index.js "$VENDOR/idb/index.js"
cp node_modules/idb/LICENSE "$VENDOR/idb/LICENSE"

# leaflet: the minified UMD build (global L), its CSS and marker images
cp node_modules/leaflet/dist/leaflet.js node_modules/leaflet/dist/leaflet.css "$VENDOR/leaflet/"
cp node_modules/leaflet/dist/images/*.png "$VENDOR/leaflet/images/"
cp node_modules/leaflet/LICENSE "$VENDOR/leaflet/LICENSE"

# swagger-ui-dist: the API docs page at /api/docs, served by the app itself (no CDN: it opens in China)
mkdir -p "$VENDOR/swagger-ui"
cp node_modules/swagger-ui-dist/{swagger-ui.css,swagger-ui-bundle.js,swagger-ui-standalone-preset.js,favicon-32x32.png} \
  "$VENDOR/swagger-ui/"
cp node_modules/swagger-ui-dist/LICENSE "$VENDOR/swagger-ui/LICENSE"

for pkg in idb leaflet swagger-ui-dist; do
  node -e "const p=require('./node_modules/$pkg/package.json');console.log(p.name+'@'+p.version)" > "$VENDOR/${pkg%-dist}/VERSION"
done
echo "vendored into $VENDOR:"; find "$VENDOR" -type f | sort
