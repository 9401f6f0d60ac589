#!/usr/bin/env bash
# Render HTML reports in headless Chromium and save screenshots under benchmarks/results/html_report/.
# Usage: bash benchmarks/report_screenshots.sh [STUDY.db] [COMPARE_DIR]
# Installs Debian's chromium when it is missing (the only thing that needs it).
set -euo pipefail
cd "$(dirname "$0")/.."
study="${1:-benchmarks/results/compare_fashion/searches/gtn_32__evolution__seed0.db}"
compare="${2:-benchmarks/results/compare_fashion}"
out=benchmarks/results/html_report
if ! command -v chromium > /dev/null; then
  apt-get install -y -q chromium > /dev/null
fi
work="$(mktemp -d)"
mkdir -p "$out"
cp "$study" "$work/study.db"   # a copy: reading a study must not touch the committed file
python -m gtn_search report "$work/study.db" --out "$work/study.html"
python -m gtn_search report "$compare" --out "$work/compare.html"
for name in study compare; do
  chromium --headless --no-sandbox --disable-gpu --disable-background-networking --disable-component-update \
    --no-first-run --user-data-dir="$work/profile-$name" --screenshot="$out/$name.png" --window-size=1280,2400 \
    "file://$work/$name.html" > /dev/null 2>&1
  echo "wrote $out/$name.png"
done
