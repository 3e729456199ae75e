#!/bin/bash
# Runs a sharded BottleNet search on Kubernetes: stores the search file in a ConfigMap, applies
# the shared volume and the Indexed Job with N shards, waits for it, then runs the merge Job.
#
#   deploy/k8s/run.sh configs/search/resnet50.toml 8 [IMAGE]
#
# NAMESPACE (default: the context's), PARALLELISM (default: N) and KUBECTL can be set in the
# environment. The search file's `baseline` must name a folder on the shared volume
# (/shared/...), since that is what the pods see.

set -euo pipefail

usage() {
    echo "usage: $0 SEARCH_TOML SHARDS [IMAGE]" >&2
    exit 2
}
(( $# >= 2 && $# <= 3 )) || usage
CONFIG="$1"
SHARDS="$2"
IMAGE="${3:-bottlenet:latest}"
[[ -f "$CONFIG" ]] || { echo "no search file $CONFIG" >&2; exit 2; }
[[ "$SHARDS" =~ ^[1-9][0-9]*$ ]] || { echo "SHARDS must be a whole number >= 1, got $SHARDS" >&2; exit 2; }
PARALLELISM="${PARALLELISM:-$SHARDS}"
NAME="$(basename "$CONFIG" .toml)"
HERE="$(cd "$(dirname "$0")" && pwd)"
read -r -a kubectl <<< "${KUBECTL:-kubectl}"
if [[ -n "${NAMESPACE:-}" ]]; then
    kubectl+=(--namespace "$NAMESPACE")
fi

# The manifests with this run's values: N in completions and SHARDS, parallelism, image, name.
render() {
    sed -E \
        -e "s/^(\s*)completions: [0-9]+$/\1completions: $SHARDS/" \
        -e "s/^(\s*)parallelism: [0-9]+$/\1parallelism: $PARALLELISM/" \
        -e "s/value: \"[0-9]+\" # shards/value: \"$SHARDS\" # shards/" \
        -e "s/value: \"[^\"]*\" # search name/value: \"$NAME\" # search name/" \
        -e "s|^(\s*)image: .*$|\1image: $IMAGE|" \
        "$1"
}

"${kubectl[@]}" create configmap bottlenet-search --from-file=search.toml="$CONFIG" \
    --dry-run=client -o yaml | "${kubectl[@]}" apply -f -
# A finished Job of the same name cannot be changed: delete the old ones (their records stay on
# the shared volume, and the new run resumes from them).
"${kubectl[@]}" delete job bottlenet-search bottlenet-search-merge --ignore-not-found
# The merge Job's template keeps completions: 1; only the search Job gets N.
render "$HERE/search-job.yaml" | "${kubectl[@]}" apply -f -

echo "waiting for job/bottlenet-search ($SHARDS shards of $NAME)..."
while true; do
    state=$("${kubectl[@]}" get job bottlenet-search \
        -o jsonpath='{range .status.conditions[?(@.status=="True")]}{.type}{" "}{end}')
    case " $state " in
        *" Complete "*) break ;;
        *" Failed "*)
            echo "the search Job failed; rerun this script to resume the unfinished shards" >&2
            "${kubectl[@]}" get pods -l app.kubernetes.io/component=search >&2 || true
            exit 1
            ;;
    esac
    sleep 30
done

render "$HERE/merge-job.yaml" | "${kubectl[@]}" apply -f -
"${kubectl[@]}" wait --for=condition=complete --timeout=1h job/bottlenet-search-merge
"${kubectl[@]}" logs job/bottlenet-search-merge
echo "merged: /shared/bottlenet/search/$NAME/bundle on volume bottlenet-shared"
