#!/usr/bin/env python3
"""scripts/netem.sh's helper: Algorithm 1's plan from `select`, the measured rows and their table,
the tbf filler stream, and the --adapt scenario's verdict. Run by netem.sh only."""
import json, math, signal, socket, subprocess, sys, time

def plan(select_file, paths, target, preset):
    """The paths to run and Algorithm 1's terms for each, from `select --json` lines."""
    rows = [json.loads(l) for l in open(select_file) if l.strip()]
    by_name = {r["candidate"]: r for r in rows}
    key = "latency_ms" if target == "latency" else "energy_mj"
    splits = [r for r in rows if r["candidate"] not in ("cloud-only", "mobile-only")]
    names = []
    for p in paths.split(","):
        if p == "chosen":
            names += [r["candidate"] for r in rows if r["chosen"]]
        elif p == "best-split":
            names += [min(splits, key=lambda r: r[key])["candidate"]] if splits else []
        elif p == "all":
            names += [r["candidate"] for r in rows]
        elif p in by_name:
            names.append(p)
        else:
            sys.exit(f"netem.sh: path '{p}' is not a candidate of select ({', '.join(by_name)})")
    names = list(dict.fromkeys(names))
    # The up-link rate select used, recovered from its own TU = 8·bytes/NB (network.rs).
    sent = [r for r in rows if r["bytes"] > 0 and r["tu_ms"] > 0]
    rate = 8 * sent[0]["bytes"] / (sent[0]["tu_ms"] * 1e3) if sent else float("inf")
    return {"preset": preset, "rate_mbps": rate, "candidates": [by_name[n] for n in names]}

def row(plan_file, name, infer_file, wire_bytes, meta):
    plan = json.load(open(plan_file))
    c = next(c for c in plan["candidates"] if c["candidate"] == name)
    m = json.load(open(infer_file))
    rate = plan["rate_mbps"]
    delay = meta["delay_ms"] if name != "mobile-only" else 0.0
    sent = m["mean_bytes"]
    tu = 8 * sent / (rate * 1e3) if math.isfinite(rate) else 0.0
    pred = c["tm_ms"] + tu + c["tc_ms"] + delay
    n = m["requests"]
    wire = wire_bytes / n if n else 0.0
    served = sum(v for k, v in (m.get("by_path") or {}).items() if k != "mobile-only")
    tu_wire = 8 * wire / (rate * 1e3) if math.isfinite(rate) else 0.0
    pred_wire = c["tm_ms"] + tu_wire + c["tc_ms"] + delay
    return {
        **meta, "preset": plan["preset"],
        "rate_mbps": rate if plan["preset"] != "none" else None,
        "path": name, "chosen": c["chosen"],
        "alg1_ms": c["latency_ms"], "alg1_bytes": c["bytes"],
        "tm_ms": c["tm_ms"], "tu_ms": tu, "tc_ms": c["tc_ms"], "pred_ms": pred,
        "pred_wire_ms": pred_wire,
        "sent_bytes": sent, "wire_bytes_per_image": wire if n else None,
        "wire_overhead_bytes": (wire * n / served - sent * n / served) if served else None,
        "tls": meta.get("tls") == "on", "transport": meta.get("transport"),
        "p50_ms": m["p50_ms"], "p95_ms": m["p95_ms"], "p99_ms": m["p99_ms"],
        "mean_ms": m.get("mean_ms"), "phone_ms": m.get("mean_phone_ms"),
        "upload_ms": m.get("mean_upload_ms"), "server_ms": m.get("mean_server_ms"),
        "err_pct": 100 * (m["p50_ms"] - pred) / pred if pred > 0 else None,
        "err_alg1_pct": 100 * (m["p50_ms"] - c["latency_ms"]) / c["latency_ms"] if c["latency_ms"] > 0 else None,
        "err_wire_pct": 100 * (m["p50_ms"] - pred_wire) / pred_wire if pred_wire > 0 else None,
        "requests": n, "accuracy": m.get("accuracy"), "fallbacks": m.get("fallbacks"),
        "by_path": m.get("by_path"),
    }

def table(rows_file, json_out):
    rows = [json.loads(l) for l in open(rows_file) if l.strip()]
    if not rows:
        return
    r0 = rows[0]
    print(f"TLS {'on' if r0['tls'] else 'off'}; transport {r0['transport']}; shaper {r0['shaper']}; delay {r0['delay_ms']:g} ms, loss {r0['loss_pct']:g} %; nice {r0['nice']}; "
          f"pinned: {r0.get('pin', 'off')}; {r0['requests']} images per path; measured = p50 end-to-end ms; * = Algorithm 1's choice")
    print("Alg1 = select's TM+TU+TC with the results file's bytes (B_alg1); pred = the same with "
          "the payload bytes really sent (B_sent); wire = the same with the bytes that left the "
          "phone's interface per image (B_wire: framing, TLS, ACKs, set-up); err = p50 vs pred")
    head = ("preset", "Mbit/s", "path", "Alg1_ms", "pred_ms", "wire_ms", "p50_ms", "err_%",
            "err_wire_%", "B_alg1", "B_sent", "B_wire", "fallback")
    fmt = "{:<6} {:>6} {:<13} {:>7} {:>7} {:>7} {:>7} {:>6} {:>10} {:>6} {:>6} {:>6} {:>8}"
    print(fmt.format(*head))
    f = lambda x, d=2: "n/a" if x is None else f"{x:.{d}f}"
    pct = lambda x: "n/a" if x is None else f"{x:+.0f}"
    for r in rows:
        print(fmt.format(r["preset"], f(r["rate_mbps"]), r["path"] + ("*" if r["chosen"] else ""),
                         f(r["alg1_ms"]), f(r["pred_ms"]), f(r["pred_wire_ms"]), f(r["p50_ms"]),
                         pct(r["err_pct"]), pct(r["err_wire_pct"]), f(r["alg1_bytes"], 0),
                         f(r["sent_bytes"], 0), f(r["wire_bytes_per_image"], 0), r["fallbacks"]))
    # A fallback answer came from the phone alone: that row did not measure its path only.
    for r in rows:
        if r["fallbacks"]:
            print(f"warning: {r['preset']} / {r['path']}: {r['fallbacks']} answers fell back "
                  f"({r['by_path']}); its p50 mixes paths", file=sys.stderr)
    # The transport's overhead per image (interface bytes less payload), for
    # `profile --role cloud --wire-overhead-bytes`: the mean over the rows that sent frames.
    split_rows = [r for r in rows if r["wire_overhead_bytes"] is not None and r["path"] not in ("cloud-only", "mobile-only")]
    if split_rows:
        o = sum(r["wire_overhead_bytes"] for r in split_rows) / len(split_rows)
        print(f"wire overhead per image (split rows, mean): {o:.1f} B over {r0['limit']} images per row")
    if json_out:
        with open(json_out, "w") as out:
            json.dump({"statistic": "p50_ms", "rows": rows}, out, indent=1)
            out.write("\n")

def filler(ifname, ethertype, mac, size_file):
    """Keeps the tbf's bucket empty with raw frames of the size in size_file (>= the 14-byte
    header), read again on SIGHUP: a new rate needs no new process (a Python start-up is
    ~0.1 s of CPU, which a 2-core host's server would feel as load).
    A blocking socket whose send buffer holds ~100 frames paces itself on the qdisc."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C: stop quietly, no traceback
    proto = int(ethertype, 16)
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(proto))
    s.bind((ifname, proto))
    s.setsockopt(socket.SOL_SOCKET, 32, 100_000)  # SO_SNDBUFFORCE (root)
    header = bytes.fromhex(mac.replace(":", "")) + bytes(6) + proto.to_bytes(2, "big")

    def sized():
        with open(size_file) as f:
            return header + bytes(max(0, int(f.read().strip()) - len(header)))

    frame = [sized()]

    def reread(_signum, _frame):
        frame[0] = sized()

    signal.signal(signal.SIGHUP, reread)
    while True:
        try:
            s.send(frame[0])
        except OSError:
            time.sleep(0.001)

def slower_profile(mobile_file, factor, out_file):
    """The phone profile of a device `factor` times slower than the measured one: every time
    scaled, as infer --emulate-slower-phone stretches every phone computation."""
    p = json.load(open(mobile_file))
    for c in p["candidates"]:
        for k in ("median_ms", "p90_ms"):
            if c.get(k) is not None:
                c[k] *= factor
    p["source"] = f"{p.get('source', '')}; every time x{factor:g} (netem.sh --slower-phone, infer --emulate-slower-phone)"
    json.dump(p, open(out_file, "w"), indent=1)

def same_path(a, b):
    return a.lower() == b.lower()

def verdict(phase):
    """The table's "ok": yes, or how much more than Algorithm 1's choice the final path costs."""
    if phase["agrees"]:
        return "yes"
    over = phase.get("final_over_alg1_pct")
    return "NO" if over is None else f"+{over:.1f}%"

def metrics_at(path):
    """Per split (lower case): queue seconds sum and count, decode + tail seconds sum and batch
    count, from the server's Prometheus text."""
    found = {}
    for line in open(path):
        if not line.startswith(("bottlenet_queue_seconds_", "bottlenet_decode_seconds_", "bottlenet_tail_seconds_")):
            continue
        name, _, rest = line.partition("{")
        labels, _, value = rest.rpartition("} ")
        split = next((l.split("=", 1)[1].strip('"') for l in labels.split(",") if l.startswith("split=")), None)
        if split is None or not name.endswith(("_sum", "_count")):
            continue
        q, nq, s, ns = found.get(split.lower(), (0.0, 0, 0.0, 0))
        v = float(value)
        if name == "bottlenet_queue_seconds_sum":
            q += v
        elif name == "bottlenet_queue_seconds_count":
            nq += int(v)
        elif name.endswith("_sum"):
            s += v
        elif name == "bottlenet_tail_seconds_count":
            ns += int(v)
        found[split.lower()] = (q, nq, s, ns)
    return found

def adapt(bin_path, results, mobile, cloud, phases_file, log_file, summary_file, meta, metrics_prefix, json_out):
    """Per phase of an --adapt run: the paths that served, the switches, and Algorithm 1's
    choice for that phase (select at the phase's rate, with the server's own mean time per
    path over the phase in place of the profile's)."""
    phases = [json.loads(l) for l in open(phases_file) if l.strip()]
    answers = [json.loads(l) for l in open(log_file) if l.strip()]
    bounds = [p["start_unix_ms"] for p in phases[1:]] + [math.inf]
    def phase_of(t):
        return next(i for i, b in enumerate(bounds) if t < b)
    for p in phases:
        p.update(images=0, fallbacks=0, by_path={}, switches=[], final=None)
    previous = None
    for a in answers:
        p = phases[phase_of(a["unix_ms"])]
        p["images"] += 1
        if a["fell_back"]:
            p["fallbacks"] += 1
            continue
        path = a["served_by"]
        p["by_path"][path] = p["by_path"].get(path, 0) + 1
        if previous is not None and not same_path(path, previous):
            p["switches"].append({"image": a["image"], "from": previous, "to": path})
        previous = path
        p["final"] = path
    cloud_profile = json.load(open(cloud))
    for i, p in enumerate(phases):
        # The server's own figures over the phase (every phone's requests, the flooders'
        # included): queue + decode + tail per path that it served. A path nobody used costs
        # its profiled time times the load factor of the busiest path that was used.
        before = metrics_at(f"{metrics_prefix}-{i}.txt")
        after_file = f"{metrics_prefix}-{i + 1}.txt" if i + 1 < len(phases) else f"{metrics_prefix}-end.txt"
        after = metrics_at(after_file)
        served_ms = {}
        for split in after:
            q0, nq0, s0, ns0 = before.get(split, (0.0, 0, 0.0, 0))
            q1, nq1, s1, ns1 = after[split]
            if nq1 > nq0 and ns1 > ns0:
                served_ms[split] = 1e3 * ((q1 - q0) / (nq1 - nq0) + (s1 - s0) / (ns1 - ns0))
        prof = json.loads(json.dumps(cloud_profile))
        profiled = {c["name"].lower(): c["median_ms"] for c in prof["candidates"]}
        factors = [ms / profiled[k] for k, ms in served_ms.items() if profiled.get(k)]
        load = max([1.0] + factors)
        p["server_ms"] = served_ms
        p["server_load_factor"] = load
        for c in prof["candidates"]:
            if c["name"].lower() == "mobile-only":
                continue
            mine = served_ms.get(c["name"].lower())
            c["median_ms"] = mine if mine is not None else c["median_ms"] * load
            c["p90_ms"] = max(c.get("p90_ms") or 0.0, c["median_ms"])
        prof_file = f"{phases_file}.cloud-{i}.json"
        json.dump(prof, open(prof_file, "w"))
        out = subprocess.run([bin_path, "select", "--results", results, "--mobile-profile", mobile,
                              "--cloud-profile", prof_file, "--uplink-mbps", str(p["rate_mbps"]),
                              "--alpha", "0", "--beta", "0", "--target", "latency", "--json"],
                             capture_output=True, text=True)
        if out.returncode != 0:
            sys.exit(f"netem.sh: select for phase {i} failed: {out.stderr.strip()}")
        rows = [json.loads(l) for l in out.stdout.splitlines() if l.strip()]
        p["alg1"] = {r["candidate"]: r["latency_ms"] for r in rows}
        p["predicted"] = next(r["candidate"] for r in rows if r["chosen"])
        p["agrees"] = p["final"] is not None and same_path(p["final"], p["predicted"])
        # How much more the phase's final path costs than Algorithm 1's choice, by Algorithm 1's
        # own figures: a phone with hysteresis (10 %, ReselectConfig) rightly stays on a path
        # that the best beats by less than that, so a near tie is not a wrong choice.
        final_ms = next((ms for name, ms in p["alg1"].items() if p["final"] and same_path(name, p["final"])), None)
        best_ms = p["alg1"][p["predicted"]]
        p["final_over_alg1_pct"] = 100 * (final_ms / best_ms - 1) if final_ms is not None and best_ms > 0 else None
    print(f"--adapt: one `infer --split auto` run; TLS {meta['tls']}; shaper {meta['shaper']}; "
          f"final = the path that served the phase's last image; Alg1 = select at the phase's rate "
          f"with the server's own time per path over the phase (paths nobody used: profiled x the load factor); "
          f"ok = yes, or how much more than Alg1's choice the final path costs by Alg1's figures")
    fmt = "{:<5} {:<12} {:>7} {:>6} {:<34} {:<22} {:<11} {:<11} {:>5}"
    print(fmt.format("phase", "spec", "Mbit/s", "images", "served", "switches (image: to)", "final", "Alg1", "ok"))
    for p in phases:
        served = ", ".join(f"{k} {v}" for k, v in sorted(p["by_path"].items()))
        if p["fallbacks"]:
            served += f", fell back {p['fallbacks']}"
        switches = ", ".join(f"{s['image']}: {s['to']}" for s in p["switches"]) or "none"
        print(fmt.format(p["phase"], p["spec"], f"{p['rate_mbps']:g}", p["images"], served, switches,
                         p["final"] or "n/a", p["predicted"], verdict(p)))
    if json_out:
        with open(json_out, "w") as out:
            json.dump({"statistic": "adapt", "meta": meta, "phases": phases,
                       "summary": json.load(open(summary_file)), "answers": answers}, out, indent=1)
            out.write("\n")

if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "plan":
        # Writes the plan; prints the rate, then one path per line.
        p = plan(args[0], args[1], args[2], args[3])
        json.dump(p, open(args[4], "w"))
        print(f"{p['rate_mbps']:.6g}")
        print("\n".join(c["candidate"] for c in p["candidates"]))
    elif cmd == "row":
        meta = json.loads(args[4])
        print(json.dumps(row(args[0], args[1], args[2], float(args[3]), meta)))
    elif cmd == "table":
        table(args[0], args[1] if len(args) > 1 else "")
    elif cmd == "slower-profile":
        slower_profile(args[0], float(args[1]), args[2])
    elif cmd == "adapt":
        adapt(*args[:7], json.loads(args[7]), args[8], args[9] if len(args) > 9 else "")
    elif cmd == "filler":
        filler(args[0], args[1], args[2], args[3])
    else:
        sys.exit(f"helper: unknown command {cmd}")
