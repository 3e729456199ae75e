#!/usr/bin/env bash
# Issue 12's figures: the whole chain on an RGB image folder made from Fashion-MNIST (1 → 3
# channels, 28 → 32 px), with the compact model. Prints each step's figures; writes into WORK.
#
# Usage: scripts/rgb_figures.sh WORK [TRAIN_IMAGES] [TEST_IMAGES]   (run at the repository root,
# release binary built: cargo build --release -p bottlenet-cli)
set -euo pipefail
WORK=${1:?usage: scripts/rgb_figures.sh WORK [TRAIN_IMAGES] [TEST_IMAGES]}
TRAIN=${2:-12000}
TEST=${3:-2000}
BIN=${BOTTLENET:-target/release/bottlenet}
mkdir -p "$WORK"
if [ ! -d "$WORK/rgb32/train" ]; then
  cargo run --release -q -p bottlenet-data --example rgb_folder -- --out "$WORK/rgb32" --train "$TRAIN" --test "$TEST"
fi
DATA="$WORK/rgb32"

# 1. Baseline at the images' own size ([data] crop = 32), 3 epochs.
[ -f "$WORK/baseline/result.json" ] || "$BIN" train --config configs/fashion-baseline.toml --data "$DATA" --set data.crop=32 --set train.epochs=3 --out "$WORK/baseline"

# 2. RB1, c' = 1, s = 2, q20, compression-aware (paper §2.2), 2 epochs from the baseline.
# The search's base experiment: the shipped one, at the photos' own size ([data] is its last table).
{ cat configs/search/fashion-base.toml; echo "crop = 32"; } > "$WORK/search-base.toml"
cat > "$WORK/search.toml" <<SPEC
name = "rgb32"
base = "$WORK/search-base.toml"
baseline = "$WORK/baseline"
splits = [1]
c_primes = [1]
ss = [2]
qualities = [20]
modes = ["aware"]
tolerance_points = 2.0
[budget]
epochs = 2
SPEC
"$BIN" search --config "$WORK/search.toml" --data "$DATA" --out "$WORK/search"
"$BIN" search merge --out "$WORK/search" --data "$DATA" --bundle "$WORK/bundle" --cloud-only-images 1000

# 3. Algorithm 1's profiling phase on this machine, then its choice per network and target.
"$BIN" profile --role mobile --bundle "$WORK/bundle" --data "$DATA" --mobile-power-w 1.306 --out "$WORK/mobile.json"
"$BIN" profile --role cloud --bundle "$WORK/bundle" --data "$DATA" --out "$WORK/cloud.json"
for network in 3g 4g wifi; do
  for target in latency energy; do
    echo "== $network $target"
    "$BIN" select --network "$network" --target "$target" --results "$WORK/search/results.json" --mobile-profile "$WORK/mobile.json" --cloud-profile "$WORK/cloud.json"
  done
done
"$BIN" eval --bundle "$WORK/bundle" --data "$DATA"
