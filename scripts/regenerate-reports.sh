#!/usr/bin/env bash
# Regenerates everything under reports/: a full per-run report (report.html, summary.md,
# summary.json, CSVs, charts) for every shipped scenario, the sweep-demper grid, and the seed
# claims. Simulator runs are deterministic: the same sources give the same files. The load
# report (reports/load-small-k200) is a real-socket run, so its real-time figures differ from
# run to run; its safety figures do not.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
rotor="${CARGO_TARGET_DIR:-target}/release/rotor"
rm -rf reports && mkdir -p reports
for file in scenarios/*.toml; do
  name=$(basename "$file" .toml)
  # Exit code 3 (a failed expectation) is a finding to report, not an error here.
  code=0
  mkdir -p "reports/$name"
  "$rotor" sim "$file" --out "reports/$name" -q > "reports/$name/verdicts.txt" || code=$?
  if [ "$code" -ne 0 ] && [ "$code" -ne 3 ]; then
    echo "rotor sim $file failed with exit code $code" >&2
    exit "$code"
  fi
  echo "$name: exit $code"
done
mkdir -p reports/sweep-demper-grid
"$rotor" sweep scenarios/sweep-demper.toml --out reports/sweep-demper-grid -q > reports/sweep-demper-grid/frontier.txt
# The seed's claims, then the demper pool under each hypothesis with its best policy.
"$rotor" seed-claims --out reports/seed-claims > /dev/null
echo "sweep and seed claims written"
# One seller's demper pool under each hypothesis and policy (the README's capacity table).
mkdir -p reports/plan
for skus in 500 1000; do
  for share in 1.0 0.3; do
    args=(plan --skus "$skus" --compare-hypotheses --policy rest,window,rate --price-change-share "$share")
    "$rotor" "${args[@]}" 2>/dev/null > "reports/plan/skus-$skus-share-$share.txt"
    "$rotor" "${args[@]}" --json 2>/dev/null > "reports/plan/skus-$skus-share-$share.json"
  done
done
echo "plans written"
mkdir -p reports/load-small-k200
"$rotor" load scenarios/load-small.toml --time-scale 200 --compare --out reports/load-small-k200 -q \
  > reports/load-small-k200/verdicts.txt
echo "load-small at K=200 written"
