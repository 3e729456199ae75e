#!/usr/bin/env bash
# Real network emulation of the phone -> cloud up-link (paper §3.1, Table 3).
#
# Two network namespaces, "phone" and "cloud", joined by a veth pair (10.77.0.1 <-> 10.77.0.2).
# The phone's egress is shaped to each preset's up-link rate; the reply path is left unshaped
# (the paper assumes the answer is tiny). `bottlenet serve` runs in the cloud namespace,
# `bottlenet infer --json` in the phone namespace, once per path, and each path's measured
# end-to-end latency is printed beside Algorithm 1's prediction from `bottlenet select`.
#
# Shaping (the kernel decides what is possible; `--shaper` forces one):
#   netem  `tc netem rate R [delay D] [loss L]`: each packet waits len/R, exactly TU = 8·D/NB.
#   tbf    for kernels without sch_netem: a tbf at rate R over an htb that gives the real traffic
#          strict priority over a low-priority stream of raw "filler" frames that the cloud side
#          drops. The filler keeps tbf's token bucket empty, so every real packet waits for its
#          own len/R (plus at most one filler frame, 0.15 ms) instead of slipping through on a
#          bucket that filled up in the idle gap between requests. No delay or loss here.
#          A mobile-only row sends nothing up and pauses the filler (its load is the emulator's).
#
# --pin on (the default for the rows): the phone and the filler on one CPU, the server on
# another, as two machines would be; off (the default with --adapt): every process floats over
# all cores.
#
# TLS is on by default (--tls off for plain text): a throwaway self-signed certificate for the
# cloud's address is made with openssl for each run; `infer` checks it with --ca.
#
# Measured latency is the p50 of the client's per-image end-to-end time (the JSON rows also carry
# the mean and its phone / upload / server parts). The client sends cloud-only's input JPEG at the
# quality the results file measured it at (`infer --results`). "pred" is Algorithm 1's TM + 8·bytes/NB + TC with the payload
# bytes the client really sent (cloud-only's JPEG quality may differ from the results file);
# "Alg1" is `select`'s own latency with the results file's bytes. "wire" is what left the
# phone's interface per image (`wire_bytes_per_image`: every packet of the up-link counted at
# the veth — Ethernet/IP/TCP, TLS, HTTP/2 and gRPC framing, ACKs, the stream's set-up amortised
# over --limit); "wire_ms" is Algorithm 1's sum with those bytes.
#
# Exit status: 0 ok, 1 a step failed, 2 bad usage, 3 a prerequisite is missing (not root, no
# `ip netns`, no tbf/htb/netem qdisc, no python3) -- `--check` tests only those.
# Cleans up (server, filler, namespaces, veth) on exit, error, SIGINT and SIGTERM; after a
# SIGKILL, `--cleanup-stale` removes namespaces left by runs that no longer exist.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${BOTTLENET_BIN:-$ROOT/target/release/bottlenet}
BUNDLE=$ROOT/models/fashion-compact
RESULTS=$ROOT/profiles/fashion-compact-results.json
MOBILE=$ROOT/profiles/fashion-compact-mobile.json
CLOUD=$ROOT/profiles/fashion-compact-cloud.json
PRESETS=3g,4g,wifi
PATHS=chosen,best-split,cloud-only,mobile-only
TARGET=latency
LIMIT=50
DATA=
DELAY_MS=0
LOSS_PCT=0
SHAPER=auto
JSON_OUT=
SERVE_ARGS="--max-batch 1 --max-delay-ms 0"
NICE=0
TLS=on
TCP_TS=on
PIN=auto
TRANSPORT=stream
CHECK=0
STALE=0
ADAPT=
PHASE_S=4
SLOWER=8
EVERY_MS=20
FLOODERS=12
DECLARED=wifi
PROBE_MS=1000

PREFIX=bnetem
PHONE_NS=$PREFIX-$$-phone
CLOUD_NS=$PREFIX-$$-cloud
PROBE_NS=$PREFIX-$$-probe
PHONE_IF=bnp$$
CLOUD_IF=bnc$$
PHONE_IP=10.77.0.1
CLOUD_IP=10.77.0.2
# The filler's frames: a bare Ethernet header of a local experimental EtherType addressed to a
# MAC nobody has; the cloud namespace's veth drops them before any protocol sees them.
FILLER_ETHERTYPE=0x88b5
FILLER_MAC=02:00:00:00:00:06
PORT=50051

usage() {
    cat <<EOF
Usage: scripts/netem.sh [OPTIONS]

Emulate the paper's up-links (Table 3) between two network namespaces and compare measured
end-to-end latency per path with Algorithm 1's prediction. Needs root, ip netns, tc, python3.

Options:
  --bin PATH             bottlenet binary [\$BOTTLENET_BIN or target/release/bottlenet]
  --bundle DIR           model bundle [models/fashion-compact]
  --results FILE         training results for select [profiles/fashion-compact-results.json]
  --mobile-profile FILE  phone profile [profiles/fashion-compact-mobile.json]
  --cloud-profile FILE   server profile [profiles/fashion-compact-cloud.json]
  --presets LIST         comma list of 3g, 4g, wifi, none (unshaped veth) [$PRESETS]
  --paths LIST           comma list of chosen, best-split, all, cloud-only, mobile-only, RBj
                         [$PATHS]
  --target T             what select minimises for "chosen": latency or energy [$TARGET]
  --limit N              test images per path [$LIMIT]
  --data PATH            dataset for infer (its default otherwise)
  --delay-ms MS          one-way up-link delay (netem only) [0]
  --loss-pct PCT         up-link packet loss, percent (netem only) [0]
  --shaper S             auto, netem or tbf (auto: netem if the kernel has it) [$SHAPER]
  --serve-args "ARGS"    extra arguments for bottlenet serve [$SERVE_ARGS]
  --tls on|off           TLS between phone and cloud (throwaway certificate) [$TLS]
  --tcp-timestamps on|off|server-off  TCP timestamps (net.ipv4.tcp_timestamps): off in
                         the phone's namespace, or server-off in the server's alone (a
                         connection has them only when both ends offer them, so a server
                         operator can drop them for every phone); off saves 12 B per
                         segment [$TCP_TS]
  --pin on|off           give the phone (with the filler) and the server a CPU each, as two
                         machines have; off: both float over every core [on; off with --adapt]
  --transport T          infer --transport: stream or unary [$TRANSPORT]
  --nice N               run server, client and filler under \`nice -n N\` (N < 0 shields the
                         measurement from other jobs on a busy machine) [0]
  --json FILE            also write the rows (with --adapt: the phases) as JSON
  --adapt PHASES         instead of the rows: one \`infer --split auto\` run through timed phases,
                         each a rate (3g, 4g, wifi or Mbit/s) with "+load" for a server loaded
                         by other phones, e.g. wifi,0.3,0.3+load; prints per phase the paths
                         that served, the switches, and Algorithm 1's choice for that phase
  --phase-s S            with --adapt: seconds per phase [$PHASE_S]
  --slower-phone K       with --adapt: the phone emulates a device K times slower than this
                         host (infer --emulate-slower-phone; its profile's times scaled by K),
                         the paper's regime of a phone slower than its server [$SLOWER]
  --every-ms MS          with --adapt: one image every MS ms (infer --every-ms) [$EVERY_MS]
  --flooders N           with --adapt: phones that load the server in a "+load" phase [$FLOODERS]
  --declared P           with --adapt: the up-link infer is told (its prior) [$DECLARED]
  --uplink-probe-ms MS   with --adapt: infer probes the up-link every MS ms, 0 never
                         (infer --uplink-probe-ms) [$PROBE_MS]
  --check                only test the prerequisites (exit 0 or 3)
  --cleanup-stale        remove $PREFIX-* namespaces whose script is gone, then exit
  -h, --help             this text

Environment: NETEM_DEBUG_KEEP=DIR copies the run's working files (server and phone logs,
metrics, the per-image log) to DIR before they are removed.
EOF
}

die() { echo "netem.sh: $*" >&2; exit 1; }
missing() { echo "netem.sh: cannot run: $*" >&2; exit 3; }
usage_error() { echo "netem.sh: $* (see --help)" >&2; exit 2; }
log() { echo "netem: $*" >&2; }

while [ $# -gt 0 ]; do
    case $1 in
        --bin) BIN=${2:?--bin needs a path}; shift 2 ;;
        --bundle) BUNDLE=${2:?}; shift 2 ;;
        --results) RESULTS=${2:?}; shift 2 ;;
        --mobile-profile) MOBILE=${2:?}; shift 2 ;;
        --cloud-profile) CLOUD=${2:?}; shift 2 ;;
        --presets) PRESETS=${2:?}; shift 2 ;;
        --paths) PATHS=${2:?}; shift 2 ;;
        --target) TARGET=${2:?}; shift 2 ;;
        --limit) LIMIT=${2:?}; shift 2 ;;
        --data) DATA=${2:?}; shift 2 ;;
        --delay-ms) DELAY_MS=${2:?}; shift 2 ;;
        --loss-pct) LOSS_PCT=${2:?}; shift 2 ;;
        --shaper) SHAPER=${2:?}; shift 2 ;;
        --serve-args) SERVE_ARGS=${2?}; shift 2 ;;
        --nice) NICE=${2:?}; shift 2 ;;
        --tls) TLS=${2:?}; shift 2 ;;
        --tcp-timestamps) TCP_TS=${2:?}; shift 2 ;;
        --pin) PIN=${2:?}; shift 2 ;;
        --transport) TRANSPORT=${2:?}; shift 2 ;;
        --json) JSON_OUT=${2:?}; shift 2 ;;
        --adapt) ADAPT=${2:?}; shift 2 ;;
        --phase-s) PHASE_S=${2:?}; shift 2 ;;
        --slower-phone) SLOWER=${2:?}; shift 2 ;;
        --every-ms) EVERY_MS=${2:?}; shift 2 ;;
        --flooders) FLOODERS=${2:?}; shift 2 ;;
        --declared) DECLARED=${2:?}; shift 2 ;;
        --uplink-probe-ms) PROBE_MS=${2:?}; shift 2 ;;
        --check) CHECK=1; shift ;;
        --cleanup-stale) STALE=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage_error "unknown argument '$1'" ;;
    esac
done

is_number() { [[ $1 =~ ^[0-9]+([.][0-9]+)?$ ]]; }
[[ $LIMIT =~ ^[1-9][0-9]*$ ]] || usage_error "--limit must be a positive integer, got '$LIMIT'"
is_number "$DELAY_MS" || usage_error "--delay-ms must be a number >= 0, got '$DELAY_MS'"
is_number "$LOSS_PCT" || usage_error "--loss-pct must be a number >= 0, got '$LOSS_PCT'"
[[ $NICE =~ ^-?[0-9]+$ ]] || usage_error "--nice must be an integer, got '$NICE'"
case $SHAPER in auto|netem|tbf) ;; *) usage_error "--shaper must be auto, netem or tbf" ;; esac
case $TARGET in latency|energy) ;; *) usage_error "--target must be latency or energy" ;; esac
case $TLS in on|off) ;; *) usage_error "--tls must be on or off" ;; esac
case $TCP_TS in on|off|server-off) ;; *) usage_error "--tcp-timestamps must be on, off or server-off" ;; esac
case $PIN in on|off|auto) ;; *) usage_error "--pin must be on or off" ;; esac
# auto: on for the rows; off for --adapt, whose loaded phases were set up with the server and its
# loading phones sharing every core (with them all on one pinned core, one CI run switched back
# and forth in the loaded phase: 3 switches instead of 1).
if [ "$PIN" = auto ]; then
    if [ -n "$ADAPT" ]; then PIN=off; else PIN=on; fi
fi
case $TRANSPORT in stream|unary) ;; *) usage_error "--transport must be stream or unary" ;; esac
[[ $PHASE_S =~ ^[1-9][0-9]*$ ]] || usage_error "--phase-s must be a positive integer, got '$PHASE_S'"
[[ $EVERY_MS =~ ^[1-9][0-9]*$ ]] || usage_error "--every-ms must be a positive integer, got '$EVERY_MS'"
[[ $FLOODERS =~ ^[1-9][0-9]*$ ]] || usage_error "--flooders must be a positive integer, got '$FLOODERS'"
is_number "$SLOWER" || usage_error "--slower-phone must be a number >= 1, got '$SLOWER'"
case $DECLARED in 3g|4g|wifi) ;; *) usage_error "--declared must be 3g, 4g or wifi" ;; esac
[[ $PROBE_MS =~ ^[0-9]+$ ]] || usage_error "--uplink-probe-ms must be a whole number of ms (0: never), got '$PROBE_MS'"
ADAPT_PHASES=()
if [ -n "$ADAPT" ]; then
    [ "$TARGET" = latency ] || usage_error "--adapt runs the latency target only"
    [ "$TRANSPORT" = stream ] || usage_error "--adapt needs --transport stream"
    IFS=, read -r -a ADAPT_PHASES <<<"$ADAPT"
    [ ${#ADAPT_PHASES[@]} -ge 2 ] || usage_error "--adapt needs at least two phases, got '$ADAPT'"
    for p in "${ADAPT_PHASES[@]}"; do
        r=${p%+load}
        case $r in 3g|4g|wifi) ;; *) is_number "$r" && [ "$r" != 0 ] || usage_error "--adapt: phase '$p' is not 3g, 4g, wifi or a rate in Mbit/s (optionally +load)" ;; esac
    done
fi
IFS=, read -r -a PRESET_LIST <<<"$PRESETS"
[ ${#PRESET_LIST[@]} -gt 0 ] || usage_error "--presets is empty"
for p in "${PRESET_LIST[@]}"; do
    case $p in 3g|4g|wifi|none) ;; *) usage_error "unknown preset '$p' (3g, 4g, wifi, none)" ;; esac
done
WANT_IMPAIR=0
if [ "$DELAY_MS" != 0 ] || [ "$LOSS_PCT" != 0 ]; then WANT_IMPAIR=1; fi

# --- cleanup -------------------------------------------------------------------------------
NAMESPACES=()   # created by this run, deleted by cleanup
PIDS=()         # background processes of this run (server, filler, infer)
TMP=

stop_pid() { # TERM, up to 5 s, then KILL
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || return 0
    kill -CONT "$pid" 2>/dev/null   # a paused loading phone acts on TERM only once resumed
    for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

stop_pids() { # TERM to all at once (they stop together), then stop_pid each
    local pid
    for pid in "$@"; do kill -TERM "$pid" 2>/dev/null && kill -CONT "$pid" 2>/dev/null; done
    for pid in "$@"; do stop_pid "$pid"; forget_pid "$pid"; done
}

forget_pid() {
    local keep=() p
    for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

cleanup() {
    local rc=$1 pid ns
    trap - EXIT INT TERM
    set +e
    for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
    for ns in "${NAMESPACES[@]}"; do
        # Anything still inside (a process this shell does not know of) would keep it alive.
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
        ip netns del "$ns" 2>/dev/null
    done
    # The veth, should setup have stopped before moving it into a namespace.
    ip link del "$PHONE_IF" 2>/dev/null
    [ -n "$TMP" ] && { [ -n "${NETEM_DEBUG_KEEP:-}" ] && cp -r "$TMP" "$NETEM_DEBUG_KEEP"; rm -rf "$TMP"; }
    [ "$rc" -ge 128 ] && log "interrupted; cleaned up"
    exit "$rc"
}
trap 'cleanup $?' EXIT
trap 'cleanup 130' INT
trap 'cleanup 143' TERM

# Runs "$@" in the background and waits for it, so that a signal interrupts the wait at once
# (bash defers traps while a foreground child runs) and cleanup can stop the child.
run_bg() {
    local pid rc=0
    "$@" &
    pid=$!
    PIDS+=("$pid")
    wait "$pid" || rc=$?
    forget_pid "$pid"
    return "$rc"
}

# --- prerequisites -------------------------------------------------------------------------
HAVE_NETEM=0
check_prerequisites() {
    [ "$(id -u)" -eq 0 ] || missing "needs root (network namespaces and tc), running as uid $(id -u)"
    local c
    for c in ip tc ss python3; do
        command -v "$c" >/dev/null || missing "'$c' not found"
    done
    if [ "$TLS" = on ]; then
        command -v openssl >/dev/null || missing "'openssl' not found (needed for --tls on; or pass --tls off)"
    fi
    ip netns list >/dev/null 2>&1 || missing "'ip netns' is not available"
    NAMESPACES+=("$PROBE_NS")
    ip netns add "$PROBE_NS" 2>/dev/null || missing "'ip netns add' failed (no network namespaces?)"
    ip -n "$PROBE_NS" link add p0 type veth peer name p1 2>/dev/null || missing "cannot create a veth pair"
    ip netns exec "$PROBE_NS" tc qdisc add dev p0 root handle 1: tbf rate 1mbit burst 1600 limit 100000 2>/dev/null \
        || missing "the kernel has no tbf qdisc"
    ip netns exec "$PROBE_NS" tc qdisc add dev p0 parent 1:1 handle 10: htb default 1 2>/dev/null \
        || missing "the kernel has no htb qdisc"
    ip netns exec "$PROBE_NS" tc qdisc add dev p1 root netem rate 1mbit 2>/dev/null && HAVE_NETEM=1
    ip netns del "$PROBE_NS"
    NAMESPACES=()
    if [ "$SHAPER" = auto ]; then
        if [ $HAVE_NETEM = 1 ]; then SHAPER=netem; else SHAPER=tbf; fi
    fi
    if [ "$SHAPER" = netem ] && [ $HAVE_NETEM = 0 ]; then
        missing "--shaper netem: the kernel has no netem qdisc (sch_netem)"
    fi
    if [ $WANT_IMPAIR = 1 ] && [ "$SHAPER" != netem ]; then
        missing "--delay-ms/--loss-pct need the netem qdisc (sch_netem), which this kernel lacks"
    fi
}

if [ $STALE = 1 ]; then
    [ "$(id -u)" -eq 0 ] || missing "needs root"
    for ns in $(ip netns list | awk '{print $1}' | grep "^$PREFIX-[0-9]*-" || true); do
        owner=${ns#"$PREFIX"-}; owner=${owner%%-*}
        if ! kill -0 "$owner" 2>/dev/null; then
            for pid in $(ip netns pids "$ns"); do kill -KILL "$pid" 2>/dev/null || true; done
            ip netns del "$ns" && log "removed stale $ns"
        fi
    done
    exit 0
fi

check_prerequisites
if [ $CHECK = 1 ]; then
    echo "ok: root, ip netns, tc tbf+htb, netem $([ $HAVE_NETEM = 1 ] && echo yes || echo no); shaper $SHAPER"
    exit 0
fi

[ -x "$BIN" ] || die "bottlenet binary '$BIN' not found or not executable (--bin or \$BOTTLENET_BIN)"
for f in "$RESULTS" "$MOBILE" "$CLOUD"; do [ -f "$f" ] || die "'$f' not found"; done
[ -d "$BUNDLE" ] || die "bundle '$BUNDLE' not found"

TMP=$(mktemp -d "/tmp/$PREFIX-$$.XXXXXX")
HELPER=$ROOT/scripts/netem_helper.py
SCHEME=http
TLS_SERVE=(--insecure)  # plain text on the namespaces' private veth, on purpose
TLS_INFER=()
if [ "$TLS" = on ]; then
    # A throwaway certificate for the cloud's address, valid for a day, never reused. Not a CA
    # (rustls refuses a CA certificate as the server's own); infer trusts it directly (--ca).
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
        -subj /CN=bottlenet-netem -addext "subjectAltName=IP:$CLOUD_IP" \
        -addext "basicConstraints=critical,CA:FALSE" -addext "extendedKeyUsage=serverAuth" \
        -keyout "$TMP/key.pem" -out "$TMP/cert.pem" 2>"$TMP/openssl.log" \
        || { cat "$TMP/openssl.log" >&2; die "openssl could not make the throwaway certificate"; }
    SCHEME=https
    TLS_SERVE=(--tls-cert "$TMP/cert.pem" --tls-key "$TMP/key.pem")
    TLS_INFER=(--ca "$TMP/cert.pem")
fi


# --- namespaces ----------------------------------------------------------------------------
NAMESPACES+=("$PHONE_NS" "$CLOUD_NS")
ip netns add "$PHONE_NS"
ip netns add "$CLOUD_NS"
ip link add "$PHONE_IF" type veth peer name "$CLOUD_IF"
ip link set "$PHONE_IF" netns "$PHONE_NS"
ip link set "$CLOUD_IF" netns "$CLOUD_NS"
ip -n "$PHONE_NS" addr add "$PHONE_IP/29" dev "$PHONE_IF"
ip -n "$CLOUD_NS" addr add "$CLOUD_IP/29" dev "$CLOUD_IF"
for ns in "$PHONE_NS" "$CLOUD_NS"; do ip -n "$ns" link set lo up; done
ip -n "$PHONE_NS" link set "$PHONE_IF" up
case $TCP_TS in
    off) ip netns exec "$PHONE_NS" sysctl -qw net.ipv4.tcp_timestamps=0 \
        || die "could not turn the phone namespace's TCP timestamps off" ;;
    server-off) ip netns exec "$CLOUD_NS" sysctl -qw net.ipv4.tcp_timestamps=0 \
        || die "could not turn the server namespace's TCP timestamps off" ;;
esac
ip -n "$CLOUD_NS" link set "$CLOUD_IF" up
log "namespaces $PHONE_NS ($PHONE_IP) <-> $CLOUD_NS ($CLOUD_IP); shaper $SHAPER"

ptc() { ip netns exec "$PHONE_NS" tc "$@"; }
# Prefixes for the measured processes. Arrays, not functions: `"${IN_PHONE[@]}" cmd &` execs
# in place, so $! is the process itself and cleanup can stop it.
# With --pin on, each end gets a core of its own, as two machines would: the phone (and the
# filler, the link's sending side) on the first allowed CPU, the server on the second.
PIN_PHONE=()
PIN_CLOUD=()
PIN_DESC=off
if [ "$PIN" = on ]; then
    read -r -a ALLOWED_CPUS < <(python3 -c 'import os; print(*sorted(os.sched_getaffinity(0)))')
    if [ ${#ALLOWED_CPUS[@]} -ge 2 ]; then
        PIN_PHONE=(taskset -c "${ALLOWED_CPUS[0]}")
        PIN_CLOUD=(taskset -c "${ALLOWED_CPUS[1]}")
        PIN_DESC="phone and filler on CPU ${ALLOWED_CPUS[0]}, server on CPU ${ALLOWED_CPUS[1]}"
        log "pinned: $PIN_DESC"
    else
        log "one CPU only: phone and server share it (--pin has nothing to split)"
    fi
fi
IN_PHONE=(ip netns exec "$PHONE_NS" "${PIN_PHONE[@]}" nice -n "$NICE")
IN_CLOUD=(ip netns exec "$CLOUD_NS" "${PIN_CLOUD[@]}" nice -n "$NICE")

FILLER_PID=
shape() { # rate_mbps ("inf" = no rate limit)
    local rate=$1 frame
    ptc qdisc del dev "$PHONE_IF" root 2>/dev/null || true
    local impair=()
    [ "$DELAY_MS" != 0 ] && impair+=(delay "${DELAY_MS}ms")
    [ "$LOSS_PCT" != 0 ] && impair+=(loss "${LOSS_PCT}%")
    if [ "$rate" = inf ]; then
        [ ${#impair[@]} -gt 0 ] && ptc qdisc add dev "$PHONE_IF" root handle 1: netem limit 100000 "${impair[@]}"
        return 0
    fi
    if [ "$SHAPER" = netem ]; then
        ptc qdisc add dev "$PHONE_IF" root handle 1: netem limit 100000 rate "${rate}mbit" "${impair[@]}"
        return 0
    fi
    # tbf: pay-before-send token bucket at the preset rate (burst = one full frame) ...
    ptc qdisc add dev "$PHONE_IF" root handle 1: tbf rate "${rate}mbit" burst 1600 limit 1000000
    # ... over strict priority: real traffic (IPv4 and ARP, 10:1) before the filler (10:2, the
    # default).
    # The real traffic is what the filter names: a filter on the filler's EtherType missed its
    # header-only frames (14 B, rates of 0.8 Mbit/s and below), which then queued with the
    # real packets in one FIFO; every real packet waited behind the filler's whole backlog
    # (~3 KB: 50 ms at 0.5 Mbit/s), and at higher rates behind the few frames queued then.
    ptc qdisc add dev "$PHONE_IF" parent 1:1 handle 10: htb default 2
    ptc class add dev "$PHONE_IF" parent 10: classid 10:1 htb rate 10gbit quantum 1514 prio 0
    ptc class add dev "$PHONE_IF" parent 10: classid 10:2 htb rate 10gbit quantum 1514 prio 1
    ptc filter add dev "$PHONE_IF" parent 10: protocol ip prio 1 u32 match u32 0 0 flowid 10:1
    ptc filter add dev "$PHONE_IF" parent 10: protocol arp prio 2 u32 match u32 0 0 flowid 10:1
    start_filler "$rate"
}

# Filler frames of ~0.15 ms on the link (at least the 14-byte header): a real packet waits for
# at most one of them (0.075 ms on average), and the generator sends ~6700 frames/s whatever
# the rate.
filler_frame_bytes() { # rate_mbps
    awk -v r="$1" 'BEGIN { f = int(r * 1e6 / 8 * 0.15e-3 + 0.5); print (f < 14 ? 14 : f) }'
}

start_filler() { # rate_mbps
    filler_frame_bytes "$1" >"$TMP/filler-bytes"
    "${IN_PHONE[@]}" python3 "$HELPER" filler "$PHONE_IF" "$FILLER_ETHERTYPE" "$FILLER_MAC" "$TMP/filler-bytes" &
    FILLER_PID=$!
    PIDS+=("$FILLER_PID")
    sleep 0.3   # let the filler fill its queue and drain the bucket
    kill -0 "$FILLER_PID" 2>/dev/null || die "the filler stream stopped at once"
}

# SIGSTOP/SIGCONT: no process starts (see reshape). After the pause the bucket has filled
# up, so the filler drains it again before anything is measured.
pause_filler() {
    [ -n "$FILLER_PID" ] || return 0
    kill -STOP "$FILLER_PID" 2>/dev/null || die "the filler stream is gone"
}
resume_filler() {
    [ -n "$FILLER_PID" ] || return 0
    kill -CONT "$FILLER_PID" 2>/dev/null || die "the filler stream is gone"
    sleep 0.3
}

stop_filler() {
    if [ -n "$FILLER_PID" ]; then
        stop_pid "$FILLER_PID"
        forget_pid "$FILLER_PID"
        FILLER_PID=
    fi
}

# A new rate on the shaped link without tearing it down (connections in flight stay up). The
# filler keeps running and takes its new frame size on SIGHUP: nothing starts, so the change
# costs the host next to no CPU (the server would read a start-up as load).
reshape() { # rate_mbps
    local rate=$1
    if [ "$SHAPER" = netem ]; then
        ptc qdisc change dev "$PHONE_IF" root handle 1: netem limit 100000 rate "${rate}mbit"
        return 0
    fi
    filler_frame_bytes "$rate" >"$TMP/filler-bytes.new"
    mv "$TMP/filler-bytes.new" "$TMP/filler-bytes"
    ptc qdisc change dev "$PHONE_IF" root handle 1: tbf rate "${rate}mbit" burst 1600 limit 1000000
    kill -HUP "$FILLER_PID" 2>/dev/null || die "the filler stream is gone"
}

unshape() {
    stop_filler
    ptc qdisc del dev "$PHONE_IF" root 2>/dev/null || true
}

# Bytes the phone's real traffic has put on its interface so far (the filler excluded).
wire_bytes() {
    if [ "$SHAPER" = tbf ] && [ -n "$FILLER_PID" ]; then
        ptc -s class show dev "$PHONE_IF" classid 10:1 | awk '/Sent/ {print $2; exit}'
    else
        ip netns exec "$PHONE_NS" cat "/sys/class/net/$PHONE_IF/statistics/tx_bytes"
    fi
}

# --- server --------------------------------------------------------------------------------
# shellcheck disable=SC2086 # SERVE_ARGS is a word list on purpose
# --adapt judges each phase by the server's own figures: its Prometheus metrics, on the cloud's
# loopback.
METRICS_PORT=9464
METRICS_ARGS=()
[ -n "$ADAPT" ] && METRICS_ARGS=(--metrics-addr "127.0.0.1:$METRICS_PORT")
"${IN_CLOUD[@]}" "$BIN" serve --bundle "$BUNDLE" --addr "$CLOUD_IP:$PORT" "${TLS_SERVE[@]}" "${METRICS_ARGS[@]}" $SERVE_ARGS \
    >"$TMP/serve.log" 2>&1 &
SERVER_PID=$!
PIDS+=("$SERVER_PID")
for i in $(seq 600); do
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$TMP/serve.log" >&2; die "bottlenet serve exited early"; }
    [ -n "$(ip netns exec "$CLOUD_NS" ss -ltnH "sport = :$PORT")" ] && break
    [ "$i" = 600 ] && { cat "$TMP/serve.log" >&2; die "bottlenet serve did not listen on $CLOUD_IP:$PORT within 60 s"; }
    sleep 0.1
done
log "server listening on $CLOUD_IP:$PORT ($SERVE_ARGS)"

# --- the run's settings, for every row ----------------------------------------------------
META=$(python3 -c 'import json, sys
k = ("shaper", "delay_ms", "loss_pct", "limit", "serve_args", "nice", "tls", "transport", "tcp_timestamps", "pin")
v = sys.argv[1:]
print(json.dumps(dict(zip(k, [v[0], float(v[1]), float(v[2]), int(v[3]), v[4], int(v[5]), v[6], v[7], v[8], v[9]]))))' \
    "$SHAPER" "$DELAY_MS" "$LOSS_PCT" "$LIMIT" "$SERVE_ARGS" "$NICE" "$TLS" "$TRANSPORT" "$TCP_TS" "$PIN_DESC")
DATA_ARGS=()
[ -n "$DATA" ] && DATA_ARGS=(--data "$DATA")

# --- --adapt: one auto run through timed phases (ends the script) ----------------------
[ -z "$ADAPT" ] || . "$ROOT/scripts/netem_adapt.sh"

# --- measure -------------------------------------------------------------------------------
ROWS=$TMP/rows.jsonl
: >"$ROWS"

for preset in "${PRESET_LIST[@]}"; do
    if [ "$preset" = none ]; then
        net=(--uplink-mbps 100000 --alpha 0 --beta 0)   # TU ~ 0: the veth is not the bottleneck
    else
        net=(--network "$preset")
    fi
    "$BIN" select --results "$RESULTS" --mobile-profile "$MOBILE" --cloud-profile "$CLOUD" \
        "${net[@]}" --target "$TARGET" --json >"$TMP/select-$preset.jsonl"
    python3 "$HELPER" plan "$TMP/select-$preset.jsonl" "$PATHS" "$TARGET" "$preset" \
        "$TMP/plan-$preset.json" >"$TMP/plan-$preset.txt"
    rate=$(head -n 1 "$TMP/plan-$preset.txt")
    [ "$preset" = none ] && rate=inf
    shape "$rate"
    while read -r path; do
        log "$preset (${rate} Mbit/s): $path, $LIMIT images"
        # mobile-only sends nothing up, so its row pauses the filler: the emulator's own load
        # is not the phone's (the bucket is drained again before the next row).
        mobile_only=0
        [ "${path,,}" = mobile-only ] && mobile_only=1
        [ "$mobile_only" = 1 ] && pause_filler
        before=$(wire_bytes)
        run_bg "${IN_PHONE[@]}" "$BIN" infer --server "$SCHEME://$CLOUD_IP:$PORT" "${TLS_INFER[@]}" \
            --transport "$TRANSPORT" --bundle "$BUNDLE" --split "$path" --results "$RESULTS" --limit "$LIMIT" "${DATA_ARGS[@]}" --json \
            >"$TMP/infer.json" || die "bottlenet infer failed on $preset / $path"
        kill -0 "$SERVER_PID" 2>/dev/null || { cat "$TMP/serve.log" >&2; die "bottlenet serve died during $preset / $path"; }
        after=$(wire_bytes)
        [ "$mobile_only" = 1 ] && resume_filler
        python3 "$HELPER" row "$TMP/plan-$preset.json" "$path" "$TMP/infer.json" \
            "$((after - before))" "$META" >>"$ROWS"
    done < <(tail -n +2 "$TMP/plan-$preset.txt")
    unshape
done

python3 "$HELPER" table "$ROWS" "$JSON_OUT"
