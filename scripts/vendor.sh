#!/usr/bin/env bash
# Copy the PWA's front-end libraries (pinned in package.json / package-lock.json) into static/pwa/vendor/,
# each with its LICENSE. The result is committed, so running or deploying the app needs no npm and no CDN.
# Run it again after changing a version in package.json:  scripts/vendor.sh
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -f package-lock.json ]]; then npm ci --no-audit --no-fund --ignore-scripts; else npm install --no-audit --no-fund --ignore-scripts; fi

VENDOR=static/pwa/vendor
rm -rf "$VENDOR"
mkdir -p "$VENDOR/idb" "$VENDOR/leaflet/images" "$VENDOR/swagger-ui"

# idb: the ES module build (one self-contained file)
cp node_modules/idb/build/index.js "$VENDOR/idb/index.js"
cp node_modules/idb/LICENSE "$VENDOR/idb/LICENSE"

# leaflet: the minified UMD build (global L), its CSS and marker images
cp node_modules/leaflet/dist/leaflet.js node_modules/leaflet/dist/leaflet.css "$VENDOR/leaflet/"
cp node_modules/leaflet/dist/images/*.png "$VENDOR/leaflet/images/"
cp node_modules/leaflet/LICENSE "$VENDOR/leaflet/LICENSE"

# swagger-ui-dist: what /api/docs loads (flask-smorest's page), served by the app itself: no CDN. Not in the
# service worker's precache (phones never open it).
for f in swagger-ui.css swagger-ui-bundle.js swagger-ui-standalone-preset.js LICENSE; do
  cp "node_modules/swagger-ui-dist/$f" "$VENDOR/swagger-ui/"
done

for pkg in idb leaflet; do
  node -e "const p=require('./node_modules/$pkg/package.json');console.log(p.name+'@'+p.version)" > "$VENDOR/$pkg/VERSION"
done
node -e "const p=require('./node_modules/swagger-ui-dist/package.json');console.log(p.name+'@'+p.version)" \
  > "$VENDOR/swagger-ui/VERSION"
echo "vendored into $VENDOR:"; find "$VENDOR" -type f | sort
