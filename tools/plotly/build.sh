#!/usr/bin/env bash
# Rebuilds static/vendor/plotly/plotly-dashflow.min.js, the Plotly the pages load: plotly.js
# from npm with only the trace types we draw (bar, scatter), 1.2 MB instead of
# the full bundle's 4.8 MB. The built file is committed, so a clone needs neither npm nor
# the network; run this only to update Plotly or add a trace type (edit entry.js), then
# commit the new files (the bundle and plotly-dashflow.css, its CSS rules). Versions are pinned in package.json and package-lock.json.
#
#   tools/plotly/build.sh            # needs node >= 18 and npm
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund
node build.js
# The global CSS rules Plotly would inject as a <style> (blocked by the CSP), as a file.
../../.venv/bin/python extract_css.py
