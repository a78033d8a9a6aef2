#!/usr/bin/env bash
# cluster_bench.sh - replicated throughput and latency of a 3-node quorumd
# cluster on loopback, measured against a single redis-server and a 3-member
# etcd cluster in the same run.
#
#   bash bench/cluster_bench.sh [BUILDDIR]
#
# BUILDDIR is an optimized build (no sanitizers), default ./build-rel. The
# cluster runs N=3 R=2 W=2; `quorumctl bench` drives it with 50 closed-loop
# clients (round robin over the nodes), 100-byte values, 50/50 get/put over
# 100k keys. redis-benchmark runs GET and SET with the same client count,
# value size and key space against a private redis-server (default
# settings, persistence off: --save ''); the mixed redis rate is the
# harmonic mean of its GET and SET rates (a 50/50 mix). etcd (Debian's
# etcd-server) runs 3 members on loopback and is measured for puts through
# its JSON gateway by 50 client threads.
#
# Environment: DURATION (10s), CLIENTS (50), KEYS (100000), VALUE (100),
# SYNC (none|batch|always: the nodes' sync policy, default none, like
# redis' default of no fsync per write), IO (auto|worker|inline: the
# nodes' io setting; unset: their default, auto), PRELOAD (1:
# write every key once first), SKIP_REDIS=1, SKIP_ETCD=1, RUNS (1: how
# many times the whole sequence runs; with more, every figure is also
# reported as the median over the runs, each run's ratios computed from
# figures measured back to back in that run), TRACE=1 (the mixed phase
# records every operation's latency with `quorumctl bench --trace` while
# the nodes' flush and compaction counters are polled every 100 ms, then
# prints the 100 ms windows holding the most operations at or above the
# p99.9 and what the engines did around them).
# The CPU time the 3 nodes and the bench client used is printed for each
# quorumd phase (the load generator must not be the bottleneck), with the
# load average before each phase, and the nodes' CPU time per operation of
# the mixed phase (the figure that depends least on the machine's load).
# The CPU time per write is printed for the puts-only phase (nodes and
# bench client), redis-server (per request) and etcd's members (per put):
# when every system is bound by the same cores, the throughput ratio
# follows the ratio of CPU per write, and the summary gives the most puts
# per second the cores allow at our cost. The summary checks the targets:
# mixed throughput >= 0.5x redis, p99.9 < 10 ms, puts >= 20x etcd.
# Every process started here is stopped by its PID on exit.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
B=${1:-$top/build-rel}
DURATION=${DURATION:-10s}
CLIENTS=${CLIENTS:-50}
KEYS=${KEYS:-100000}
VALUE=${VALUE:-100}
SYNC=${SYNC:-none}
IO=${IO:-}
QD=$B/src/node/quorumd
QC=$B/src/cli/quorumctl
[ -x "$QD" ] && [ -x "$QC" ] || { echo "cluster_bench: build quorumd and quorumctl in $B first" >&2; exit 2; }
if grep -q -- "-fsanitize" "$B/Makefile" 2>/dev/null; then
	echo "cluster_bench: warning: $B is a sanitizer build; figures will be low" >&2
fi

work=$(mktemp -d /tmp/cluster-bench.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT

free_port() {
	python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'
}
wait_port() {
	for _ in $(seq 1 200); do
		python3 -c "import socket,sys;socket.create_connection(('127.0.0.1',$1),0.2)" 2>/dev/null && return 0
		sleep 0.05
	done
	echo "cluster_bench: nothing listens on port $1" >&2
	return 1
}
jget() { python3 -c "import json,sys;print(json.load(open('$1'))['$2'])"; }
load() { cut -d' ' -f1-3 /proc/loadavg; }
# CPU seconds (user + system) a live process has used so far
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$1/stat"; }
# their sum over the live processes given
cpu_sum() {
	local s=0 p
	for p in "$@"; do s=$(python3 -c "print($s + $(cpu_s "$p"))"); done
	echo "$s"
}
# TRACE=1: where the operations at or above the p99.9 fell (100 ms
# windows, most first) and the engines' flush/compaction counter changes
# within 200 ms of each window (times in seconds from the first operation)
trace_report() {
	python3 - "$1" "$2" <<'EOF2'
import collections, sys
ops = []
for line in open(sys.argv[1]):
    f = line.split()
    if len(f) == 4:
        ops.append((int(f[0]), int(f[1])))
if not ops:
    sys.exit(0)
t0 = ops[0][0] - ops[0][1]
lat = sorted(l for _, l in ops)
thr = lat[min(len(lat) - 1, int(len(lat) * 0.999))]
win = collections.Counter((t - t0) // 100000 for t, l in ops if l >= thr)
events, last = [], {}
for line in open(sys.argv[2]):
    f = line.split()
    if len(f) != 5:
        continue
    t, node, v = int(f[0]), f[1], tuple(f[2:])
    if node in last and last[node] != v:
        what = []
        if v[0] != last[node][0]: what.append("flush")
        if v[1] != last[node][1]: what.append("compaction")
        if v[2] != last[node][2]: what.append("stall")
        events.append(((t - t0) / 1e6, node, "+".join(what) or "?"))
    last[node] = v
print("trace: %d ops, p99.9 %.1f ms; %d ops at or above it" % (len(ops), thr / 1000, sum(win.values())))
for w, n in win.most_common(8):
    a, b = w / 10, (w + 1) / 10
    near = ["%s@%.1fs(%s)" % (e[2], e[0], e[1]) for e in events if a - 0.2 <= e[0] <= b + 0.2]
    print("  %.1f-%.1f s: %d slow ops; engine events finished nearby: %s" % (a, b, n, ", ".join(near) or "none"))
EOF2
}

RUNS=${RUNS:-1}
res="$work/results.txt" # one line per figure: run name value
: >"$res"


echo "== machine: $(nproc) cores, load average $(load)"

run_quorumd() { # $1 = run number
	local ports peers nodes pre i cl_cpu
	ports=($(free_port) $(free_port) $(free_port))
	peers="n1@127.0.0.1:${ports[0]},n2@127.0.0.1:${ports[1]},n3@127.0.0.1:${ports[2]}"
	rm -rf "$work"/n1 "$work"/n2 "$work"/n3
	for i in 0 1 2; do
		"$QD" --data "$work/n$((i + 1))" --listen "127.0.0.1:${ports[$i]}" --node-id "n$((i + 1))" \
			--peers "$peers" --n 3 --r 2 --w 2 --sync "$SYNC" ${IO:+-o io="$IO"} --log-level warn \
			>"$work/n$((i + 1)).log" 2>&1 &
		pids+=($!)
	done
	for p in "${ports[@]}"; do wait_port "$p"; done
	nodes="127.0.0.1:${ports[0]},127.0.0.1:${ports[1]},127.0.0.1:${ports[2]}"
	pre=()
	[ "${PRELOAD:-0}" = 1 ] && pre=(--preload)
	echo "== run $1: quorumd: 3 nodes, N=3 R=2 W=2, sync=$SYNC io=${IO:-default}, $CLIENTS clients, $VALUE-byte values, 50% gets, $KEYS keys, $DURATION (load $(load))"
	local n0 n1
	n0=$(cpu_sum "${pids[@]}")
	local tr=() poller=""
	if [ "${TRACE:-0}" = 1 ]; then
		tr=(--trace "$work/trace.txt")
		python3 - "$QC" "$work/poll.txt" "${ports[@]}" <<'EOF2' &
import json, subprocess, sys, time
qc, out, ports = sys.argv[1], open(sys.argv[2], "w"), sys.argv[3:]
while True:  # stopped by its PID
    for p in ports:
        t = time.monotonic()
        r = subprocess.run([qc, "--node", "127.0.0.1:" + p, "--json", "status"],
                           capture_output=True, text=True)
        try:
            s = json.loads(r.stdout).get("storage", {})
        except ValueError:
            continue
        out.write("%d %s %s %s %s\n" % (int(t * 1e6), p, s.get("flushes"),
                                          s.get("compactions"), s.get("stall_ms")))
    out.flush()
    time.sleep(0.1)
EOF2
		poller=$!
		pids+=("$poller")
	fi
	( TIMEFORMAT='%U %S'; time "$QC" --timeout 5s bench --nodes "$nodes" --clients "$CLIENTS" \
		--keys "$KEYS" --value-size "$VALUE" --get-percent 50 --duration "$DURATION" --r 2 --w 2 \
		"${pre[@]}" "${tr[@]}" --json >"$work/q.json" ) 2>"$work/q.time" || true
	n1=$(cpu_sum "${pids[@]}")
	if [ -n "$poller" ]; then
		kill "$poller" 2>/dev/null || true
		wait "$poller" 2>/dev/null || true
		trace_report "$work/trace.txt" "$work/poll.txt"
	fi
	cat "$work/q.json"
	local q_ops q_p50 q_p99 q_p999 q_err
	q_ops=$(jget "$work/q.json" ops_per_sec)
	q_p50=$(jget "$work/q.json" p50_ms)
	q_p99=$(jget "$work/q.json" p99_ms)
	q_p999=$(jget "$work/q.json" p999_ms)
	q_err=$(jget "$work/q.json" errors)
	cl_cpu=$(tail -1 "$work/q.time" | awk '{printf "%.2f", $1 + $2}')
	printf "quorumd  %10.0f ops/s  p50 %.3f ms  p99 %.3f ms  p99.9 %.3f ms  errors %s\n" \
		"$q_ops" "$q_p50" "$q_p99" "$q_p999" "$q_err"
	local n_cpu q_cpu_op
	n_cpu=$(python3 -c "print($n1 - $n0)")
	q_cpu_op=$(python3 -c "import json;ops=json.load(open('$work/q.json'))['ops'];print('%.1f' % (($n_cpu) * 1e6 / ops if ops else 0))")
	printf "         cpu: 3 nodes %.2f s, bench client %.2f s; nodes' cpu per op %s us\n" "$n_cpu" "$cl_cpu" "$q_cpu_op"
	echo "$1 q_cpu_op $q_cpu_op" >>"$res"
	echo "$1 q_ops $q_ops" >>"$res"
	echo "$1 q_p50 $q_p50" >>"$res"
	echo "$1 q_p99 $q_p99" >>"$res"
	echo "$1 q_p999 $q_p999" >>"$res"
	# puts only, for the comparison with etcd (which is measured on puts)
	n0=$(cpu_sum "${pids[@]}")
	( TIMEFORMAT='%U %S'; time "$QC" --timeout 5s bench --nodes "$nodes" --clients "$CLIENTS" \
		--keys "$KEYS" --value-size "$VALUE" --get-percent 0 --duration "$DURATION" --r 2 --w 2 \
		--json >"$work/qp.json" ) 2>"$work/qp.time" || true
	n1=$(cpu_sum "${pids[@]}")
	local q_puts q_cpu_put q_cl_put
	q_puts=$(jget "$work/qp.json" ops_per_sec)
	read -r q_cpu_put q_cl_put < <(python3 -c "
import json; ops = json.load(open('$work/qp.json'))['ops'] or 1
cl = sum(map(float, open('$work/qp.time').read().split()[-2:]))
print('%.1f %.1f' % (($n1 - $n0) * 1e6 / ops, cl * 1e6 / ops))")
	printf "quorumd  %10.0f puts/s (puts only)  p99 %.3f ms  p99.9 %.3f ms\n" \
		"$q_puts" "$(jget "$work/qp.json" p99_ms)" "$(jget "$work/qp.json" p999_ms)"
	printf "         cpu per put: 3 nodes %s us, bench client %s us\n" "$q_cpu_put" "$q_cl_put"
	echo "$1 q_puts $q_puts" >>"$res"
	echo "$1 q_cpu_put $q_cpu_put" >>"$res"
	echo "$1 q_cl_put $q_cl_put" >>"$res"
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	pids=()
}

have_redis=0
if [ "${SKIP_REDIS:-0}" != 1 ]; then
	if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
		echo "== installing redis-server (Debian package)"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server >/dev/null || true
	fi
	if command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null; then
		have_redis=1
	else
		echo "== redis-server not available; skipped"
	fi
fi
run_redis() { # $1 = run number
	local rp n r_set r_get r_set_p99 r_get_p99 r_mix
	rp=$(free_port)
	redis-server --port "$rp" --bind 127.0.0.1 --save '' --appendonly no \
		--daemonize no --dir "$work" >"$work/redis.log" 2>&1 &
	pids+=($!)
	wait_port "$rp"
	local r0 r1
	r0=$(cpu_s "${pids[-1]}")
	n=$((CLIENTS * 4000))
	echo "== run $1: redis-benchmark -c $CLIENTS -d $VALUE -r $KEYS -n $n -t set,get (single redis-server; load $(load))"
	redis-benchmark -p "$rp" -c "$CLIENTS" -d "$VALUE" -r "$KEYS" -n "$n" -t set,get --csv \
		>"$work/redis.csv"
	r1=$(cpu_s "${pids[-1]}")
	cat "$work/redis.csv"
	read -r r_set r_get r_set_p99 r_get_p99 < <(python3 - "$work/redis.csv" <<'EOF2'
import csv, sys
rows = {r[0]: r for r in csv.reader(open(sys.argv[1])) if r and r[0] != "test"}
s, g = rows["SET"], rows["GET"]
# columns: test, rps, avg, min, p50, p95, p99, max
print(s[1], g[1], s[6], g[6])
EOF2
)
	r_mix=$(python3 -c "print(2/(1/$r_set+1/$r_get))")
	printf "redis    %10.0f ops/s mixed (SET %.0f, GET %.0f; p99 %s / %s ms)\n" \
		"$r_mix" "$r_set" "$r_get" "$r_set_p99" "$r_get_p99"
	echo "$1 r_mix $r_mix" >>"$res"
	# SET and GET ran n requests each
	printf "         cpu: redis-server %s us per request\n" "$(python3 -c "print('%.1f' % (($r1 - $r0) * 1e6 / (2 * $n)))")"
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	pids=()
}

have_etcd=0
if [ "${SKIP_ETCD:-0}" != 1 ]; then
	if ! command -v etcd >/dev/null; then
		echo "== installing etcd-server (Debian package)"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q etcd-server >/dev/null || true
	fi
	if command -v etcd >/dev/null; then
		have_etcd=1
	else
		echo "== etcd not available; skipped"
	fi
fi
run_etcd() { # $1 = run number
	local cp=() pp=() cluster="" i e_put e_out
	for i in 0 1 2; do cp+=($(free_port)); pp+=($(free_port)); done
	for i in 0 1 2; do cluster+="${cluster:+,}e$i=http://127.0.0.1:${pp[$i]}"; done
	rm -rf "$work"/etcd0 "$work"/etcd1 "$work"/etcd2
	for i in 0 1 2; do
		ETCD_UNSUPPORTED_ARCH= etcd --name "e$i" --data-dir "$work/etcd$i" \
			--listen-client-urls "http://127.0.0.1:${cp[$i]}" \
			--advertise-client-urls "http://127.0.0.1:${cp[$i]}" \
			--listen-peer-urls "http://127.0.0.1:${pp[$i]}" \
			--initial-advertise-peer-urls "http://127.0.0.1:${pp[$i]}" \
			--initial-cluster "$cluster" --initial-cluster-state new \
			--log-level error >"$work/etcd$i.log" 2>&1 &
		pids+=($!)
	done
	for p in "${cp[@]}"; do wait_port "$p"; done
	local e0 e1
	e0=$(cpu_sum "${pids[@]}")
	echo "== run $1: etcd: 3 members on loopback, $CLIENTS client threads putting $VALUE-byte values for $DURATION (load $(load))"
	e_out=$(python3 - "$DURATION" "$CLIENTS" "$VALUE" "$KEYS" "${cp[@]}" <<'EOF2'
import base64, http.client, json, random, sys, threading, time
dur, clients, vsize, keys = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
ports = sys.argv[5:]
secs = float(dur[:-2]) / 1000 if dur.endswith("ms") else float(dur.rstrip("s"))
val = base64.b64encode(b"x" * vsize).decode()
count = [0] * clients
errors = [0] * clients
# wait for a leader
deadline = time.time() + 30
while time.time() < deadline:
    try:
        c = http.client.HTTPConnection("127.0.0.1", int(ports[0]), timeout=2)
        c.request("POST", "/v3/kv/put", json.dumps({"key": base64.b64encode(b"probe").decode(), "value": val}))
        if c.getresponse().status == 200:
            break
    except Exception:
        pass
    time.sleep(0.2)
def run(i):
    c = http.client.HTTPConnection("127.0.0.1", int(ports[i % len(ports)]), timeout=10)
    end = time.time() + secs
    rnd = random.Random(i)
    while time.time() < end:
        k = base64.b64encode(b"bench-%d" % rnd.randrange(keys)).decode()
        try:
            c.request("POST", "/v3/kv/put", json.dumps({"key": k, "value": val}))
            r = c.getresponse(); r.read()
            if r.status == 200: count[i] += 1
            else: errors[i] += 1
        except Exception:
            errors[i] += 1
            c = http.client.HTTPConnection("127.0.0.1", int(ports[i % len(ports)]), timeout=10)
ts = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
t0 = time.time()
for t in ts: t.start()
for t in ts: t.join()
print("%.1f %d" % (sum(count) / (time.time() - t0), sum(count)))
print("etcd errors: %d" % sum(errors), file=sys.stderr)
EOF2
)
	e1=$(cpu_sum "${pids[@]}")
	local e_cpu_put e_n
	read -r e_put e_n <<<"$e_out"
	e_cpu_put=$(python3 -c "print('%.1f' % (($e1 - $e0) * 1e6 / max(1, $e_n)))")
	printf "etcd     %10.0f puts/s (3 members)\n" "$e_put"
	printf "         cpu per put: 3 members %s us\n" "$e_cpu_put"
	echo "$1 e_put $e_put" >>"$res"
	echo "$1 e_cpu_put $e_cpu_put" >>"$res"
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	pids=()
}

for run in $(seq 1 "$RUNS"); do
	run_quorumd "$run"
	[ "$have_redis" = 1 ] && run_redis "$run"
	[ "$have_etcd" = 1 ] && run_etcd "$run"
done

echo "== summary (load average now $(load))"
python3 - "$res" "$RUNS" "$(nproc)" <<'EOF2'
import sys, statistics
runs = int(sys.argv[2])
v = {}
for line in open(sys.argv[1]):
    r, k, x = line.split()
    v.setdefault(int(r), {})[k] = float(x)
def ratios(d):
    out = {}
    if "r_mix" in d and d["r_mix"] > 0:
        out["redis"] = d["q_ops"] / d["r_mix"]
    if "e_put" in d and d["e_put"] > 0:
        out["etcd"] = d["q_puts"] / d["e_put"]
        out["etcd_mixed"] = d["q_ops"] / d["e_put"]
    return out
rows = []
for r in sorted(v):
    d = v[r]; q = ratios(d)
    print("run %d: quorumd %.0f ops/s, p50 %.3f ms, p99 %.3f ms, p99.9 %.3f ms, puts %.0f/s" %
          (r, d["q_ops"], d["q_p50"], d["q_p99"], d["q_p999"], d["q_puts"]), end="")
    if "redis" in q: print("; redis %.0f ops/s, ours/redis %.2fx" % (d["r_mix"], q["redis"]), end="")
    if "etcd" in q: print("; etcd %.0f puts/s, ours/etcd (puts) %.1fx" % (d["e_put"], q["etcd"]), end="")
    print()
    rows.append((d, q))
med = lambda xs: statistics.median(xs) if xs else None
m = {k: med([d[k] for d, _ in rows if k in d]) for k in ("q_ops", "q_p50", "q_p99", "q_p999", "q_puts", "r_mix", "e_put", "q_cpu_op", "q_cpu_put", "q_cl_put", "e_cpu_put")}
mr = {k: med([q[k] for _, q in rows if k in q]) for k in ("redis", "etcd", "etcd_mixed")}
label = "median of %d runs" % runs if runs > 1 else "1 run"
print("quorumd 3 nodes N=3 R=2 W=2 (%s): %.0f ops/s, p50 %.3f ms, p99 %.3f ms, p99.9 %.3f ms; puts only %.0f/s; nodes' cpu per op %.1f us" %
      (label, m["q_ops"], m["q_p50"], m["q_p99"], m["q_p999"], m["q_puts"], m["q_cpu_op"]))
if mr["redis"] is not None:
    print("ours/redis (mixed 50/50): %.2fx (redis %.0f ops/s)" % (mr["redis"], m["r_mix"]))
if mr["etcd"] is not None:
    print("ours/etcd (puts vs puts): %.1fx; ours mixed / etcd puts: %.1fx (etcd %.0f puts/s)" %
          (mr["etcd"], mr["etcd_mixed"], m["e_put"]))
if m["q_cpu_put"] is not None and m["q_cl_put"] is not None:
    cores = int(sys.argv[3])
    bound = cores * 1e6 / (m["q_cpu_put"] + m["q_cl_put"])
    print("cpu per put: 3 nodes %.1f us + bench client %.1f us; at that cost %d cores allow at most about %.0f puts/s" %
          (m["q_cpu_put"], m["q_cl_put"], cores, bound), end="")
    if m["e_cpu_put"] is not None and m["e_put"]:
        print("; etcd's 3 members %.1f us per put (%.1fx ours); 20x etcd is %.0f puts/s" %
              (m["e_cpu_put"], m["e_cpu_put"] / m["q_cpu_put"], 20 * m["e_put"]), end="")
    print()
verdict = lambda ok: "met" if ok else "NOT met"
print("targets: >= 0.5x redis: %s; p99.9 < 10 ms: %s; >= 20x etcd: %s" % (
    verdict(mr["redis"] is not None and mr["redis"] >= 0.5) if mr["redis"] is not None else "not measured",
    verdict(m["q_p999"] < 10.0),
    verdict(mr["etcd"] >= 20.0) if mr["etcd"] is not None else "not measured"))
EOF2
exit 0
