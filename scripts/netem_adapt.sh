# Sourced by scripts/netem.sh with --adapt (its namespaces, server and settings are up):
# one `infer --split auto` run through timed phases, each a rate and whether other phones load
# the server, judged per phase against Algorithm 1 (docs/netem.md). Ends the script.

scrape_metrics() { # file: the server's Prometheus text now (the HTTP header lines included)
    # bash's /dev/tcp rather than a Python client: at a phase change the host must stay quiet.
    timeout 5 ip netns exec "$CLOUD_NS" bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && printf "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n" >&3 && cat <&3' \
        _ "$METRICS_PORT" >"$1" || die "could not read the server's metrics"
    head -n 1 "$1" | grep -q '^HTTP/1\.[01] 200' || die "the server's metrics endpoint answered: $(head -n 1 "$1")"
}

# Established connections whose client end is in the cloud's namespace: the loading phones
# only (the measured phone's end is in its own namespace). `infer` connects once its models,
# engine and data are loaded, and sends at once.
flooders_connected() {
    ip netns exec "$CLOUD_NS" ss -Htn state established "( dport = :$PORT )" | wc -l
}

# Returns once every loading phone is connected and the server has answered three requests
# per phone; dies after 120 s.
wait_for_flooders() {
    local deadline=$(( $(date +%s) + 120 )) connected=0 answered=0
    while :; do
        for pid in "${LOAD_PIDS[@]}"; do
            kill -0 "$pid" 2>/dev/null || die "a loading phone stopped early: $(cat "$TMP"/flooder-*.log | head -n 3)"
        done
        connected=$(flooders_connected)
        if [ "$connected" -ge "$FLOODERS" ]; then
            scrape_metrics "$TMP/metrics-warmup.txt"
            answered=$(awk '/^bottlenet_requests_total\{/ { n += $2 } END { print n + 0 }' "$TMP/metrics-warmup.txt")
            [ "$answered" -ge $(( 3 * FLOODERS )) ] && return 0
        fi
        [ "$(date +%s)" -lt "$deadline" ] || die "the $FLOODERS loading phones were not all sending after 120 s ($connected connected, $answered requests answered)"
        sleep 0.2
    done
}

[ "$SHAPER" = netem ] || [ "$SHAPER" = tbf ] || die "--adapt needs a shaped link"
# Each phase's rate: a preset's, recovered from select as the rows do, or the number given.
RATES=()
for p in "${ADAPT_PHASES[@]}"; do
    r=${p%+load}
    if [[ $r =~ ^(3g|4g|wifi)$ ]]; then
        "$BIN" select --results "$RESULTS" --mobile-profile "$MOBILE" --cloud-profile "$CLOUD" \
            --network "$r" --json >"$TMP/select-$r.jsonl"
        r=$(python3 "$HELPER" plan "$TMP/select-$r.jsonl" all latency "$r" "$TMP/plan-$r.json")
        r=${r%%$'\n'*}   # its first line
    fi
    RATES+=("$r")
done
python3 "$HELPER" slower-profile "$MOBILE" "$SLOWER" "$TMP/mobile-slower.json"
# Images for every phase, plus one second's worth for the phone's start-up: the phases
# begin at fixed times after its launch, and the last one ends with its last image.
images=$(( (${#ADAPT_PHASES[@]} * PHASE_S + 1) * 1000 / EVERY_MS ))
LOG=$TMP/adapt-log.jsonl
PHASES_FILE=$TMP/phases.jsonl
: >"$PHASES_FILE"
LOAD_PIDS=()
if [[ " ${ADAPT_PHASES[*]} " == *+load* ]]; then
    # Other phones, in the cloud's namespace (their traffic never crosses the shaped link),
    # on the bundle's first split: they queue where this phone's split requests queue.
    # Started now and paused once every one of them is sending, so that a "+load" phase's
    # load begins at once (SIGCONT) and ends at once (SIGSTOP). A fixed wait is not enough:
    # each phone's start-up (models, engine, data) costs about 0.4 s of CPU, and twenty-four
    # of them left over for the phase starved the server at its start, so its split went idle
    # for two seconds inside the loaded phase (seen in CI) and the measured phone rightly
    # came back to it.
    for n in $(seq "$FLOODERS"); do
        "${IN_CLOUD[@]}" "$BIN" infer --server "$SCHEME://$CLOUD_IP:$PORT" "${TLS_INFER[@]}" --bundle "$BUNDLE" \
            "${DATA_ARGS[@]}" --json >/dev/null 2>"$TMP/flooder-$n.log" &
        LOAD_PIDS+=($!)
        PIDS+=($!)
    done
    wait_for_flooders
    for pid in "${LOAD_PIDS[@]}"; do
        kill -STOP "$pid" 2>/dev/null || die "a loading phone stopped early: $(cat "$TMP"/flooder-*.log | head -n 3)"
    done
fi
LOADED=0
shape "${RATES[0]}"
log "adapt: ${#ADAPT_PHASES[@]} phases of ${PHASE_S} s, an image every ${EVERY_MS} ms ($images), phone ${SLOWER}x slower, declared $DECLARED"
# The measured phone runs 10 nice levels above the rest: on one host the flooders of a
# "+load" phase compete with it for the CPU, and an upload that waited for a core would
# rightly read as a slower link. A real phone has its own CPU.
ip netns exec "$PHONE_NS" nice -n $((NICE - 10)) "$BIN" infer --server "$SCHEME://$CLOUD_IP:$PORT" "${TLS_INFER[@]}" --bundle "$BUNDLE" \
    --split auto --results "$RESULTS" --mobile-profile "$TMP/mobile-slower.json" --cloud-profile "$CLOUD" \
    --network "$DECLARED" --target latency --emulate-slower-phone "$SLOWER" --every-ms "$EVERY_MS" \
    --uplink-probe-ms "$PROBE_MS" --limit "$images" --log "$LOG" "${DATA_ARGS[@]}" --json >"$TMP/adapt.json" 2>"$TMP/adapt.err" &
PHONE_PID=$!
PIDS+=("$PHONE_PID")
LAUNCHED_MS=$(date +%s%3N)
for i in "${!ADAPT_PHASES[@]}"; do
    p=${ADAPT_PHASES[$i]}
    if [ "$i" -gt 0 ]; then
        # Phase i begins i*PHASE_S after the launch, whatever the changes before it took
        # (re-shaping restarts the filler, stopping flooders takes a moment).
        left_ms=$(( LAUNCHED_MS + i * PHASE_S * 1000 - $(date +%s%3N) ))
        [ "$left_ms" -gt 0 ] && sleep "$((left_ms / 1000)).$(printf %03d $((left_ms % 1000)))"
        kill -0 "$PHONE_PID" 2>/dev/null || break   # the run ended early: the phases left are empty
    fi
    # The phase's images start as its change begins (the phone's reaction counts in the
    # phase); the server's time over the phase is read from when the change is done.
    printf '{"phase": %d, "spec": "%s", "rate_mbps": %s, "load": %s, "start_unix_ms": %s}\n' \
        "$i" "$p" "${RATES[$i]}" "$([[ $p == *+load ]] && echo true || echo false)" "$(date +%s%3N)" >>"$PHASES_FILE"
    if [ "$i" -gt 0 ] && [ "${RATES[$i]}" != "${RATES[$((i - 1))]}" ]; then
        reshape "${RATES[$i]}"
    fi
    if [[ $p == *+load ]] && [ "$LOADED" = 0 ]; then
        for pid in "${LOAD_PIDS[@]}"; do kill -CONT "$pid"; done
        LOADED=1
    elif [[ $p != *+load ]] && [ "$LOADED" = 1 ]; then
        for pid in "${LOAD_PIDS[@]}"; do kill -STOP "$pid"; done
        LOADED=0
        sleep 0.2   # what they left in the server's queue (one request each) drains
    fi
    scrape_metrics "$TMP/metrics-$i.txt"
    log "adapt: phase $i: ${RATES[$i]} Mbit/s$([[ $p == *+load ]] && echo ", server loaded by $FLOODERS phones")"
done
rc=0
wait "$PHONE_PID" || rc=$?
forget_pid "$PHONE_PID"
scrape_metrics "$TMP/metrics-end.txt"
[ ${#LOAD_PIDS[@]} -eq 0 ] || stop_pids "${LOAD_PIDS[@]}"
[ "$rc" = 0 ] || { cat "$TMP/adapt.err" >&2; die "bottlenet infer --split auto failed (status $rc)"; }
kill -0 "$SERVER_PID" 2>/dev/null || { cat "$TMP/serve.log" >&2; die "bottlenet serve died during --adapt"; }
unshape
ADAPT_META=$(python3 -c 'import json, sys
m = json.loads(sys.argv[1])
m.update(phase_s=int(sys.argv[2]), slower_phone=float(sys.argv[3]), every_ms=int(sys.argv[4]), flooders=int(sys.argv[5]), declared=sys.argv[6], uplink_probe_ms=int(sys.argv[7]))
print(json.dumps(m))' "$META" "$PHASE_S" "$SLOWER" "$EVERY_MS" "$FLOODERS" "$DECLARED" "$PROBE_MS")
python3 "$HELPER" adapt "$BIN" "$RESULTS" "$TMP/mobile-slower.json" "$CLOUD" "$PHASES_FILE" "$LOG" \
    "$TMP/adapt.json" "$ADAPT_META" "$TMP/metrics" "$JSON_OUT"
exit 0
