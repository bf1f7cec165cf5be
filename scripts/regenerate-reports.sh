#!/usr/bin/env bash
# Regenerates reports/<scenario>/ (summary.json, cycles.csv, proxies.csv) for every shipped
# scenario. Runs are deterministic: the same sources give byte-identical files.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
for file in scenarios/*.toml; do
  name=$(basename "$file" .toml)
  # Exit code 3 (a failed expectation) is a finding to report, not an error here.
  code=0
  target/release/rotor sim "$file" --out "reports/$name" -q > "reports/$name.verdicts.txt" || code=$?
  if [ "$code" -ne 0 ] && [ "$code" -ne 3 ]; then
    echo "rotor sim $file failed with exit code $code" >&2
    exit "$code"
  fi
  echo "$name: exit $code"
done
