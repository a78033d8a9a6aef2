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
# redis' default of no fsync per write), IO (worker|inline), PRELOAD (1:
# write every key once first), SKIP_REDIS=1, SKIP_ETCD=1.
# Every process started here is stopped by its PID on exit.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
B=${1:-$top/build-rel}
DURATION=${DURATION:-10s}
CLIENTS=${CLIENTS:-50}
KEYS=${KEYS:-100000}
VALUE=${VALUE:-100}
SYNC=${SYNC:-none}
IO=${IO:-worker}
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

echo "== machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"

# ---- quorumd x3 -----------------------------------------------------------
ports=($(free_port) $(free_port) $(free_port))
peers="n1@127.0.0.1:${ports[0]},n2@127.0.0.1:${ports[1]},n3@127.0.0.1:${ports[2]}"
for i in 0 1 2; do
	"$QD" --data "$work/n$((i + 1))" --listen "127.0.0.1:${ports[$i]}" --node-id "n$((i + 1))" \
		--peers "$peers" --n 3 --r 2 --w 2 --sync "$SYNC" -o io="$IO" --log-level warn \
		>"$work/n$((i + 1)).log" 2>&1 &
	pids+=($!)
done
for p in "${ports[@]}"; do wait_port "$p"; done
nodes="127.0.0.1:${ports[0]},127.0.0.1:${ports[1]},127.0.0.1:${ports[2]}"
pre=()
[ "${PRELOAD:-0}" = 1 ] && pre=(--preload)
echo "== quorumd: 3 nodes, N=3 R=2 W=2, sync=$SYNC io=$IO, $CLIENTS clients, $VALUE-byte values, 50% gets, $KEYS keys, $DURATION"
"$QC" --timeout 5s bench --nodes "$nodes" --clients "$CLIENTS" --keys "$KEYS" \
	--value-size "$VALUE" --get-percent 50 --duration "$DURATION" --r 2 --w 2 "${pre[@]}" \
	--json >"$work/q.json" || true
cat "$work/q.json"
q_ops=$(jget "$work/q.json" ops_per_sec)
q_p50=$(jget "$work/q.json" p50_ms)
q_p99=$(jget "$work/q.json" p99_ms)
q_p999=$(jget "$work/q.json" p999_ms)
q_err=$(jget "$work/q.json" errors)
printf "quorumd  %10.0f ops/s  p50 %.3f ms  p99 %.3f ms  p99.9 %.3f ms  errors %s\n" \
	"$q_ops" "$q_p50" "$q_p99" "$q_p999" "$q_err"
# puts only, for the comparison with etcd (which is measured on puts)
"$QC" --timeout 5s bench --nodes "$nodes" --clients "$CLIENTS" --keys "$KEYS" \
	--value-size "$VALUE" --get-percent 0 --duration "$DURATION" --r 2 --w 2 \
	--json >"$work/qp.json" || true
q_puts=$(jget "$work/qp.json" ops_per_sec)
printf "quorumd  %10.0f puts/s (puts only)  p99 %.3f ms  p99.9 %.3f ms\n" \
	"$q_puts" "$(jget "$work/qp.json" p99_ms)" "$(jget "$work/qp.json" p999_ms)"
for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
pids=()

# ---- redis ----------------------------------------------------------------
r_mix=""
if [ "${SKIP_REDIS:-0}" != 1 ]; then
	if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
		echo "== installing redis-server (Debian package)"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server >/dev/null || true
	fi
	if command -v redis-server >/dev/null; then
		rp=$(free_port)
		redis-server --port "$rp" --bind 127.0.0.1 --save '' --appendonly no \
			--daemonize no --dir "$work" >"$work/redis.log" 2>&1 &
		pids+=($!)
		wait_port "$rp"
		n=$((CLIENTS * 4000))
		echo "== redis-benchmark -c $CLIENTS -d $VALUE -r $KEYS -n $n -t set,get (single redis-server)"
		redis-benchmark -p "$rp" -c "$CLIENTS" -d "$VALUE" -r "$KEYS" -n "$n" -t set,get --csv \
			>"$work/redis.csv"
		cat "$work/redis.csv"
		read -r r_set r_get r_set_p99 r_get_p99 < <(python3 - "$work/redis.csv" <<'EOF'
import csv, sys
rows = {r[0]: r for r in csv.reader(open(sys.argv[1])) if r and r[0] != "test"}
s, g = rows["SET"], rows["GET"]
# columns: test, rps, avg, min, p50, p95, p99, max
print(s[1], g[1], s[6], g[6])
EOF
)
		r_mix=$(python3 -c "print(2/(1/$r_set+1/$r_get))")
		printf "redis    %10.0f ops/s mixed (SET %.0f, GET %.0f; p99 %s / %s ms)\n" \
			"$r_mix" "$r_set" "$r_get" "$r_set_p99" "$r_get_p99"
		for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
		for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
		pids=()
	else
		echo "== redis-server not available; skipped"
	fi
fi

# ---- etcd -----------------------------------------------------------------
e_put=""
if [ "${SKIP_ETCD:-0}" != 1 ]; then
	if ! command -v etcd >/dev/null; then
		echo "== installing etcd-server (Debian package)"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q etcd-server >/dev/null || true
	fi
	if command -v etcd >/dev/null; then
		cp=() pp=() cluster=""
		for i in 0 1 2; do cp+=($(free_port)); pp+=($(free_port)); done
		for i in 0 1 2; do cluster+="${cluster:+,}e$i=http://127.0.0.1:${pp[$i]}"; done
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
		echo "== etcd: 3 members on loopback, $CLIENTS client threads putting $VALUE-byte values for $DURATION"
		e_put=$(python3 - "$DURATION" "$CLIENTS" "$VALUE" "$KEYS" "${cp[@]}" <<'EOF'
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
print("%.1f" % (sum(count) / (time.time() - t0)))
print("etcd errors: %d" % sum(errors), file=sys.stderr)
EOF
)
		printf "etcd     %10.0f puts/s (3 members)\n" "$e_put"
		for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
		for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
		pids=()
	else
		echo "== etcd not available; skipped"
	fi
fi

echo "== summary"
printf "quorumd 3 nodes N=3 R=2 W=2: %.0f ops/s, p50 %.3f ms, p99 %.3f ms, p99.9 %.3f ms\n" \
	"$q_ops" "$q_p50" "$q_p99" "$q_p999"
[ -n "$r_mix" ] && python3 -c "print('ours/redis (mixed 50/50): %.2fx' % ($q_ops/$r_mix))"
[ -n "$e_put" ] && python3 -c "print('ours/etcd (puts vs puts): %.1fx; ours mixed / etcd puts: %.1fx' % ($q_puts/$e_put, $q_ops/$e_put))"
exit 0
