#!/usr/bin/env bash
# Resident memory of `bottlenet serve` (docs/pytorch-comparison.md, "Peak resident memory"):
# starts `serve --bundle BUNDLE --engine ENGINE` on 127.0.0.1 (port from the OS), sends the RB1
# split and then cloud-only through `infer` with the image arguments given after `--`, and prints
# VmRSS after loading, VmRSS at the end and VmHWM (the peak) from /proc.
#
#   scripts/serve_rss.sh models/fashion-compact tract -- --data data/fashion-mnist-subset --limit 500
#   scripts/serve_rss.sh /path/to/resnet50-bundle burn -- --images photos/*/*.jpg
set -euo pipefail
if [ $# -lt 3 ] || [ "$3" != "--" ]; then
    echo "usage: $0 BUNDLE auto|onednn|xnnpack|tract|burn -- INFER_IMAGE_ARGS..." >&2
    exit 2
fi
bundle=$1 engine=$2
shift 3
bin=${BOTTLENET:-target/release/bottlenet}
[ -x "$bin" ] || { echo "no bottlenet binary at $bin; run cargo build --release -p bottlenet-cli or set BOTTLENET" >&2; exit 1; }
log=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$log"' EXIT
"$bin" serve --bundle "$bundle" --addr 127.0.0.1:0 --engine "$engine" > "$log/serve.out" 2> "$log/serve.err" &
pid=$!
for _ in $(seq 1 600); do grep -q "^serving" "$log/serve.out" 2>/dev/null && break; sleep 0.1; done
url=$(grep -o 'http://[0-9.:]*' "$log/serve.out" | head -1)
[ -n "$url" ] || { echo "serve did not start: $(tail -1 "$log/serve.err")" >&2; exit 1; }
kb() { awk -v key="$1:" '$1 == key { print $2 }' "/proc/$pid/status"; }
after_load=$(kb VmRSS)
for split in RB1 cloud-only; do
    "$bin" infer --server "$url" --bundle "$bundle" --split "$split" --engine "$engine" --json "$@" > "$log/infer-$split.json"
done
echo "bundle=$bundle engine=$engine rss_after_load_kB=$after_load rss_end_kB=$(kb VmRSS) peak_kB=$(kb VmHWM)"
