#!/usr/bin/env bash
# Renders resources/keyrelay.svg to the hicolor PNG sizes committed in resources/icons (run after editing the SVG).
# Needs rsvg-convert (Debian: librsvg2-bin).
set -euo pipefail
cd "$(dirname "$0")/.."
for size in 16 22 24 32 48 64 128 256 512; do
    dir="resources/icons/hicolor/${size}x${size}/apps"
    mkdir -p "$dir"
    rsvg-convert --width "$size" --height "$size" --output "$dir/keyrelay.png" resources/keyrelay.svg
done
echo "rendered $(find resources/icons -name keyrelay.png | wc -l) icons"
