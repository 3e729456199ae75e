#!/bin/bash
# Submits a sharded BottleNet search as a Slurm array and its merge as a job that starts only
# when every shard succeeded. Run from the repository root (the search file's paths are
# relative to it):
#
#   deploy/slurm/submit.sh configs/search/resnet50.toml 8 [/shared/bottlenet/search/resnet50]
#
# Extra sbatch options go in SBATCH_SEARCH_OPTS / SBATCH_MERGE_OPTS (e.g. "--partition=gpu").
# BOTTLENET names the binary (default: bottlenet on PATH).

set -euo pipefail

usage() {
    echo "usage: $0 SEARCH_TOML SHARDS [OUT_DIR]" >&2
    exit 2
}
(( $# >= 2 && $# <= 3 )) || usage
CONFIG="$1"
SHARDS="$2"
[[ -f "$CONFIG" ]] || { echo "no search file $CONFIG" >&2; exit 2; }
[[ "$SHARDS" =~ ^[1-9][0-9]*$ ]] || { echo "SHARDS must be a whole number >= 1, got $SHARDS" >&2; exit 2; }
OUT="${3:-/shared/bottlenet/search/$(basename "$CONFIG" .toml)}"
BUNDLE="${BUNDLE:-$OUT/bundle}"
HERE="$(cd "$(dirname "$0")" && pwd)"

mkdir -p "$OUT/logs"
read -r -a search_opts <<< "${SBATCH_SEARCH_OPTS:-}"
read -r -a merge_opts <<< "${SBATCH_MERGE_OPTS:-}"
exports="ALL,CONFIG=$CONFIG,OUT=$OUT,SHARDS=$SHARDS,BUNDLE=$BUNDLE,BOTTLENET=${BOTTLENET:-bottlenet}"

array_id=$(sbatch --parsable \
    --array="0-$((SHARDS - 1))" \
    --export="$exports" \
    --output="$OUT/logs/search-%A_%a.out" \
    "${search_opts[@]}" \
    "$HERE/search.sbatch")
array_id="${array_id%%;*}" # --parsable prints "id" or "id;cluster"

merge_id=$(sbatch --parsable \
    --dependency="afterok:$array_id" \
    --kill-on-invalid-dep=yes \
    --export="$exports" \
    --output="$OUT/logs/merge-%j.out" \
    "${merge_opts[@]}" \
    "$HERE/merge.sbatch")
merge_id="${merge_id%%;*}"

echo "search array: job $array_id (shards 0-$((SHARDS - 1)) of $SHARDS) -> $OUT"
echo "merge:        job $merge_id (after every shard succeeds) -> $BUNDLE"
echo "watch with:   squeue -j $array_id,$merge_id"
