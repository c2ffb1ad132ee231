#!/usr/bin/env bash
# A/B/A/B comparison of server variants (binaries and/or environment) on the same wrk load.
# Each variant: "label|binary|VAR=value VAR2=value" (env optional), or "label|pgbench|<pgbench args>"
# to measure pgbench in the same interleaving (its tps is reported as req/s). Example:
#   bench/compare.sh "base|/work/bench-target/release/serein|" \
#                    "1worker|/work/bench-target/release/serein|TOKIO_WORKER_THREADS=1" \
#                    "pgb4|pgbench|-M prepared -f bench/profile_tx.sql"
# SSLMODE=disable turns TLS off for both the server's pool and pgbench (default: libpq/sqlx
# default "prefer", i.e. TLS whenever the server has ssl = on).
# ROUNDS (3), DURATION (15 s), LOAD_MAX (0.5; waits up to LOAD_WAIT_MAX s) as in run.sh.
# WRK_SCRIPT (default bench/random_tenant.lua); for GET /auth/me: WRK_SCRIPT=bench/me.lua with
# TOKENS=<file minted by bench/mint_tokens.py> and the same JWT_SECRET in the environment.
# Servers run with rate limits far above any rate reached here and SEREIN_DATA_DIR in /tmp.
# Prints per-round req/s and server / client / machine CPU µs per request, then medians.
set -euo pipefail
# Run from a private copy, so that editing this file during a run cannot derail it.
if [[ -z ${BENCH_ROOT:-} ]]; then
    BENCH_ROOT=$(cd "$(dirname "$0")/.." && pwd)
    export BENCH_ROOT
    snap=$(mktemp /tmp/bench-XXXXXX.sh)
    cp "$0" "$snap"
    exec bash "$snap" "$@"
fi
cd "$BENCH_ROOT"
ROUNDS=${ROUNDS:-3}; DURATION=${DURATION:-15}; CONNS=${CONNS:-8}; PORT=${PORT:-8080}
LOAD_MAX=${LOAD_MAX:-0.5}; LOAD_WAIT_MAX=${LOAD_WAIT_MAX:-600}
DB=${DB:-serein_bench}
WRK_SCRIPT=${WRK_SCRIPT:-bench/random_tenant.lua}
export SEREIN_DATA_DIR=${SEREIN_DATA_DIR:-/tmp/serein-bench-data} \
    RATE_LIMIT_PER_IP_PER_SEC=1000000 RATE_LIMIT_PER_IP_BURST=1000000 \
    AUTH_RATE_LIMIT_PER_MIN=1000000 AUTH_RATE_LIMIT_BURST=1000000 PORT
SSLQ=; if [[ -n ${SSLMODE:-} ]]; then SSLQ="?sslmode=$SSLMODE"; export PGSSLMODE=$SSLMODE; fi
OUT=${OUT:-bench/out/compare-$(date -u +%Y%m%dT%H%M%SZ)}; mkdir -p "$OUT"
HZ=$(getconf CLK_TCK)
busy() { awk '/^cpu /{printf "%.2f\n", ($2+$3+$4+$7+$8+$9)/100}' /proc/stat; }
pcpu() { awk -v hz="$HZ" '{printf "%.2f\n", ($14+$15)/hz}' "/proc/$1/stat"; }
wait_idle() {
    local w=0
    while awk -v a="$(cut -d' ' -f1 /proc/loadavg)" -v m="$LOAD_MAX" 'BEGIN{exit !(a >= m)}'; do
        (( w >= LOAD_WAIT_MAX )) && { echo "  (load $(cut -d' ' -f1 /proc/loadavg) after ${w}s: proceeding)" >&2; return; }
        sleep 10; w=$((w + 10))
    done
}
PID=
stop() { if [[ -n $PID ]]; then kill -TERM "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi; PID=; }
trap stop EXIT
if curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$PORT/health/live" 2>/dev/null; then
    echo "something already serves 127.0.0.1:$PORT (another benchmark running?): refusing to measure" >&2
    exit 1
fi
: > "$OUT/results.tsv"
for r in $(seq 1 "$ROUNDS"); do
    for v in "$@"; do
        IFS='|' read -r label bin envs <<< "$v"
        wait_idle
        TIMEFORMAT='%U %S'
        if [[ $bin == pgbench ]]; then
            b0=$(busy)
            # shellcheck disable=SC2086
            { time pgbench -h 127.0.0.1 -U postgres -c"$CONNS" -j1 -T"$DURATION" -n $envs "$DB" > "$OUT/pgb-$label-$r.txt" 2>&1; } 2> "$OUT/time-$label-$r.txt"
            b1=$(busy)
            rps=$(awk '/^tps = /{print $3}' "$OUT/pgb-$label-$r.txt")
            n=$(awk '/actually processed:/{split($NF, a, "/"); print a[1]}' "$OUT/pgb-$label-$r.txt")
            c=$(awk '{print $1+$2}' "$OUT/time-$label-$r.txt")
            awk -v l="$label" -v r="$r" -v rps="$rps" -v n="$n" -v c="$c" -v b="$(awk -v a="$b0" -v b="$b1" 'BEGIN{print b-a}')" \
                'BEGIN{printf "%s\t%s\t%.0f\t%.0f\t%.0f\t%.0f\n", l, r, rps, 0, c/n*1e6, b/n*1e6}' | tee -a "$OUT/results.tsv"
            continue
        fi
        env DATABASE_URL="postgres://postgres@127.0.0.1:5432/$DB$SSLQ" BIND="127.0.0.1:$PORT" RUST_LOG=warn \
            SEREIN_TENANTS_DIR= DB_MAX_CONNECTIONS="$CONNS" $envs "$bin" serve > "$OUT/server-$label.log" 2>&1 &
        PID=$!
        for _ in $(seq 1 100); do curl -fsS -o /dev/null "http://127.0.0.1:$PORT/health/live" 2>/dev/null && break; sleep 0.1; done
        if ! kill -0 "$PID" 2>/dev/null; then
            echo "  $label: server did not start:" >&2; tail -3 "$OUT/server-$label.log" >&2; PID=; continue
        fi
        wrk -c"$CONNS" -t1 -d3s -s "$WRK_SCRIPT" "http://127.0.0.1:$PORT" > /dev/null 2>&1   # warm-up
        s0=$(pcpu "$PID"); b0=$(busy)
        { time wrk -c"$CONNS" -t1 -d"${DURATION}s" --latency -s "$WRK_SCRIPT" "http://127.0.0.1:$PORT" > "$OUT/wrk-$label-$r.txt" 2>&1; } 2> "$OUT/time-$label-$r.txt"
        s1=$(pcpu "$PID"); b1=$(busy)
        stop
        rps=$(awk '/^Requests\/sec:/{print $2}' "$OUT/wrk-$label-$r.txt")
        n=$(awk '/requests in/{print $1}' "$OUT/wrk-$label-$r.txt")
        c=$(awk '{print $1+$2}' "$OUT/time-$label-$r.txt")
        grep -q Non-2xx "$OUT/wrk-$label-$r.txt" && echo "  WARNING: non-2xx in $label round $r" >&2
        awk -v l="$label" -v r="$r" -v rps="$rps" -v n="$n" -v s="$(awk -v a="$s0" -v b="$s1" 'BEGIN{print b-a}')" \
            -v c="$c" -v b="$(awk -v a="$b0" -v b="$b1" 'BEGIN{print b-a}')" \
            'BEGIN{printf "%s\t%s\t%.0f\t%.0f\t%.0f\t%.0f\n", l, r, rps, s/n*1e6, c/n*1e6, b/n*1e6}' | tee -a "$OUT/results.tsv"
    done
done
echo "label	median_req/s	min	max	server_us/req	client_us/req	machine_us/req"
python3 - "$OUT/results.tsv" <<'PY'
import sys, statistics as st, collections
rows = collections.OrderedDict()
for l in open(sys.argv[1]):
    f = l.split("\t"); rows.setdefault(f[0], []).append([float(x) for x in f[2:]])
for k, v in rows.items():
    c = list(zip(*v))
    print(f"{k}\t{st.median(c[0]):.0f}\t{min(c[0]):.0f}\t{max(c[0]):.0f}\t{st.median(c[1]):.0f}\t{st.median(c[2]):.0f}\t{st.median(c[3]):.0f}")
PY
