#!/usr/bin/env bash
# Read-path benchmark: GET /api/v1/tenant/profile (random tenant per request) against pgbench
# running the same SQL transaction on the same data with the same client count.
#
#   bench/run.sh                    # build, start, seed if needed, warm up, 3 interleaved rounds
#   ROUNDS=3 DURATION=20 bench/run.sh
#   SKIP_BUILD=1 SKIP_OHA=1 bench/run.sh
#   SSLMODE=disable bench/run.sh    # no TLS between server/pgbench and Postgres (default: prefer)
#
# Writes raw outputs to bench/out/<timestamp>/ and prints a summary (also in summary.md there).
# Measurements (each preceded by a wait for the 1-minute load average < LOAD_MAX):
#   A    wrk -c8 -t1 -d20s -s bench/random_tenant.lua            (the API)
#   B4   pgbench -M prepared -c8 -j1 -T20 -n -f bench/profile_tx.sql            (4 round trips)
#   B3p  pgbench -M prepared ... -f bench/profile_tx_pipelined.sql  (BEGIN+set_config pipelined: 3)
#   B3s  pgbench -M simple   ... -f bench/profile_tx_compound_simple.sql (`BEGIN \; SELECT set_config`)
# then a latency run at ~80 % of the median API rate (oha -q), and RSS idle / under load.
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
ROOT=$PWD

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-20}
WARMUP=${WARMUP:-5}
CONNS=${CONNS:-8}
LOAD_MAX=${LOAD_MAX:-0.5}
LOAD_WAIT_MAX=${LOAD_WAIT_MAX:-600}
PORT=${PORT:-8080}
PGHOST=${PGHOST:-127.0.0.1}
PGPORT=${PGPORT:-5432}
PGUSER=${PGUSER:-postgres}
DB=${DB:-serein_bench}
DATABASE_URL="postgres://${PGUSER}@${PGHOST}:${PGPORT}/${DB}"
# TLS: by default both sqlx and libpq use sslmode=prefer, so with ssl = on in postgresql.conf the
# server's pool AND pgbench talk TLS over loopback. SSLMODE=disable turns it off for both.
if [[ -n ${SSLMODE:-} ]]; then
    DATABASE_URL="$DATABASE_URL?sslmode=$SSLMODE"
    export PGSSLMODE=$SSLMODE
fi
TARGET=${CARGO_TARGET_DIR_BENCH:-/work/bench-target}
BIN=$TARGET/release/serein
OHA=${OHA:-$(command -v oha || echo "$HOME/.cargo/bin/oha")}
export PGHOST PGPORT PGUSER

OUT=${OUT:-$ROOT/bench/out/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
RESULTS=$OUT/results.tsv   # kind round value(req/s|tps) client_cpu_s server_cpu_s machine_busy_s wall_s loadavg_before waited_s steal_s
: > "$RESULTS"
log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" | tee -a "$OUT/run.log" >&2; }

# --- helpers -------------------------------------------------------------------------------

loadavg1() { cut -d' ' -f1 /proc/loadavg; }

# Wait until the 1-minute load average is below LOAD_MAX (poll every 10 s, give up after
# LOAD_WAIT_MAX seconds and note it). Prints "<loadavg> <waited_seconds>[!]".
wait_idle() {
    local waited=0 la
    while :; do
        la=$(loadavg1)
        if awk -v a="$la" -v m="$LOAD_MAX" 'BEGIN{exit !(a < m)}'; then
            echo "$la $waited"; return
        fi
        if (( waited >= LOAD_WAIT_MAX )); then
            log "load average still $la after ${waited}s: proceeding anyway"
            echo "$la ${waited}!"; return
        fi
        sleep 10; waited=$((waited + 10))
    done
}

# Busy CPU seconds of the whole machine (all cores) from /proc/stat.
machine_busy() {
    awk '/^cpu /{busy=$2+$3+$4+$7+$8+$9; printf "%.2f\n", busy/100}' /proc/stat
}
# CPU seconds stolen by the hypervisor (all cores): a noisy host shows here.
machine_steal() {
    awk '/^cpu /{printf "%.2f\n", $9/100}' /proc/stat
}
# CPU seconds (user+system) of a process and its threads.
proc_cpu() {
    awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f\n", ($14+$15)/hz}' "/proc/$1/stat"
}
rss_kb() { awk '/^VmRSS/{print $2}' "/proc/$1/status"; }
hwm_kb() { awk '/^VmHWM/{print $2}' "/proc/$1/status"; }

SERVER_PID=
stop_server() {
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    SERVER_PID=
}
trap stop_server EXIT

# Run one measurement. $1 = kind, $2 = round, rest = the command (its stdout to a file).
measure() {
    local kind=$1 round=$2; shift 2
    local lw la waited f=$OUT/${kind}.r${round}.txt
    lw=$(wait_idle); la=${lw% *}; waited=${lw#* }
    log "$kind round $round (loadavg $la, waited ${waited}s)"
    local s0 c0 b0 t0 t1 s1 b1 ccpu
    s0=$(proc_cpu "$SERVER_PID"); b0=$(machine_busy); st0=$(machine_steal); t0=$(date +%s.%N)
    # Sample the server's RSS half-way through (API runs only).
    local sampler=
    if [[ $kind == api ]]; then
        ( sleep $((DURATION / 2)); rss_kb "$SERVER_PID" > "$OUT/rss_load.r${round}" ) &
        sampler=$!
    fi
    # bash's `time` reports the client's own CPU (user + sys of the child).
    local TIMEFORMAT='%U %S'
    { time "$@" > "$f" 2> "$f.err"; } 2> "$f.time"
    t1=$(date +%s.%N); s1=$(proc_cpu "$SERVER_PID"); b1=$(machine_busy); st1=$(machine_steal)
    if [[ -n $sampler ]]; then wait "$sampler" 2>/dev/null || true; fi
    ccpu=$(awk '{printf "%.2f", $1+$2}' "$f.time")
    local value
    case $kind in
        api*) value=$(awk '/^Requests\/sec:/{print $2}' "$f")
              if grep -q "Non-2xx" "$f"; then log "WARNING: non-2xx responses in $f"; fi ;;
        *)    value=$(awk '/^tps = /{print $3}' "$f")
              if grep -q "failed transactions: [1-9]" "$f"; then log "WARNING: failed transactions in $f"; fi ;;
    esac
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$kind" "$round" "$value" "$ccpu" \
        "$(awk -v a="$s0" -v b="$s1" 'BEGIN{printf "%.2f", b-a}')" \
        "$(awk -v a="$b0" -v b="$b1" 'BEGIN{printf "%.2f", b-a}')" \
        "$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}')" "$la" "$waited" \
        "$(awk -v a="$st0" -v b="$st1" 'BEGIN{printf "%.2f", b-a}')" >> "$RESULTS"
    log "  -> $value"
}

WRK=(wrk -c"$CONNS" -t1 -d"${DURATION}s" --latency -s bench/random_tenant.lua "http://127.0.0.1:$PORT")
PGB=(pgbench -c"$CONNS" -j1 -T"$DURATION" -n)
run_api()  { measure api  "$1" "${WRK[@]}"; }
run_b4()   { measure pgbench_4stmt        "$1" "${PGB[@]}" -M prepared -f bench/profile_tx.sql "$DB"; }
run_b3p()  { measure pgbench_3rt_pipeline "$1" "${PGB[@]}" -M prepared -f bench/profile_tx_pipelined.sql "$DB"; }
run_b3s()  { measure pgbench_3rt_simple   "$1" "${PGB[@]}" -M simple -f bench/profile_tx_compound_simple.sql "$DB"; }

if curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$PORT/health/live" 2>/dev/null; then
    echo "something already serves 127.0.0.1:$PORT (another benchmark running?): refusing to measure" >&2
    exit 1
fi
# --- machine ---------------------------------------------------------------------------------
{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "nproc: $(nproc)"
    echo "cpu: $(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)"
    echo "kernel: $(uname -r)"
    echo "postgres: $(psql -XAtc 'select version()' postgres)"
    echo "wrk: $(wrk -v 2>&1 | head -1)"
    echo "pgbench: $(pgbench --version)"
    echo "sslmode: ${SSLMODE:-default (prefer)}; postgres ssl = $(psql -XAtc 'show ssl' postgres)"
    echo "git: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)$(git -C "$ROOT" diff --quiet 2>/dev/null || echo ' (dirty)')"
} > "$OUT/machine.txt"
cat "$OUT/machine.txt" >&2

# --- build, migrate, seed --------------------------------------------------------------------
if [[ -z "${SKIP_BUILD:-}" ]]; then
    log "building (CARGO_TARGET_DIR=$TARGET)"
    CARGO_TARGET_DIR=$TARGET cargo build --release --quiet
fi

export DATABASE_URL BIND="127.0.0.1:$PORT" RUST_LOG=warn SEREIN_TENANTS_DIR= DB_MAX_CONNECTIONS=$CONNS
log "migrating $DB"
if ! "$BIN" migrate > "$OUT/migrate.log" 2>&1; then
    # An applied migration was edited since the bench database was made (development):
    # the bench database is disposable, so rebuild it.
    if grep -q "previously applied but has been modified" "$OUT/migrate.log" && [[ $DB == *bench* ]]; then
        log "a migration changed since $DB was created: dropping and recreating it"
        dropdb --if-exists "$DB"
        "$BIN" migrate >> "$OUT/migrate.log" 2>&1
    else
        cat "$OUT/migrate.log" >&2; exit 1
    fi
fi

seeded=$(psql -XAtc "select (select count(*) from tenants where slug ~ '^t[0-9]+\$') = 1000 and (select count(*) from memberships) >= 1000000" "$DB")
if [[ $seeded != t ]]; then
    log "seeding $DB (1,000 tenants x 1,000 memberships)"
    /usr/bin/time -f '%e s' -o "$OUT/seed.time" psql -X -q -v ON_ERROR_STOP=1 -f bench/seed.sql "$DB" > "$OUT/seed.log"
    log "seeded in $(cat "$OUT/seed.time")"
else
    log "$DB already seeded"
fi

start_server() {
    "$BIN" serve > "$OUT/server.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 100); do
        curl -fsS -o /dev/null "http://127.0.0.1:$PORT/health/live" 2>/dev/null && break
        sleep 0.1
    done
    [[ $(cat "/proc/$SERVER_PID/comm") == serein ]] || { log "server pid $SERVER_PID is not serein"; exit 1; }
}

# --- capture what the handler sends (log_statement = all for three requests) ----------------
# and check that the pgbench scripts still run the same SQL (the handler may have changed).
PGLOG=${PGLOG:-/var/log/postgresql/postgresql-15-main.log}
reset_log_statement() { psql -XAtqc "ALTER DATABASE $DB RESET log_statement" postgres || true; }
if [[ -r $PGLOG ]]; then
    trap 'stop_server; reset_log_statement' EXIT
    psql -XAtqc "ALTER DATABASE $DB SET log_statement = 'all'" postgres
    mark=$(stat -c %s "$PGLOG")
    start_server
    for n in 1 2 1; do
        curl -fsS -o /dev/null -H "Host: t$n.localhost:$PORT" "http://127.0.0.1:$PORT/api/v1/tenant/profile"
    done
    stop_server
    reset_log_statement
    trap stop_server EXIT
    sleep 0.5
    # Keep this database's lines and their continuation lines (multi-line statements).
    tail -c +"$((mark + 1))" "$PGLOG" | awk -v db="@$DB " '
        /^[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9] / { keep = index($0, db) > 0 }
        keep' > "$OUT/captured_statements.log"
    python3 - "$OUT/captured_statements.log" bench/profile_tx_compound_simple.sql > "$OUT/statement_check.txt" <<'PY' || true
import re, sys
log, script = sys.argv[1], sys.argv[2]
# Split the log into entries (a timestamped line and its continuations).
entries, cur = [], None
for line in open(log):
    if re.match(r"^\d{4}-\d\d-\d\d ", line):
        cur = [line.rstrip("\n")]; entries.append(cur)
    elif cur is not None:
        cur.append(line.rstrip("\n"))
texts = []
for e in entries:
    m = re.search(r"LOG:\s+(?:statement|execute [^:]+):\s?(.*)$", e[0])
    if m:
        texts.append(" ".join([m.group(1)] + [l.strip() for l in e[1:]]))
norm = lambda s: re.sub(r"\s+", " ", s).replace(" ;", ";").strip().rstrip(";")
t1 = "00000000-0000-4000-8000-100000000001"
tx = []
for i, t in enumerate(texts):   # the profile transaction for t1: BEGIN..., the SELECT, COMMIT
    if t.startswith("BEGIN;") and t1 in t and i + 2 < len(texts):
        tx = [norm(t.replace(t1, "UUID")), norm(texts[i + 1]), norm(texts[i + 2])]
        break
lines = [l for l in open(script) if l.strip() and not l.startswith(("--", "\\set"))]
sc = [norm(l.replace("\\;", ";").replace("'00000000-0000-4000-8000-:k'", "'UUID'")) for l in lines]
sc[1] = sc[1].replace("WHERE id = 'UUID'", "WHERE id = $1")
print("handler sends (tenant t1, uuid as UUID):")
for t in tx: print("  " + t)
print("pgbench script (normalised):")
for t in sc: print("  " + t)
ok = tx == sc
print("MATCH" if ok else "MISMATCH: update bench/profile_tx*.sql to what the handler sends")
sys.exit(0 if ok else 1)
PY
    if grep -q '^MATCH' "$OUT/statement_check.txt"; then
        log "captured statements match bench/profile_tx*.sql"
    else
        log "WARNING: the handler's SQL differs from the pgbench scripts (see $OUT/statement_check.txt)"
    fi
else
    log "cannot read $PGLOG: statement capture skipped"
fi

# --- server ----------------------------------------------------------------------------------
log "starting server"
start_server
curl -fsS -H "Host: t1.localhost:$PORT" "http://127.0.0.1:$PORT/api/v1/tenant/profile" > "$OUT/sample_response.json"
echo >> "$OUT/sample_response.json"
sleep 2
RSS_IDLE_START=$(rss_kb "$SERVER_PID")
log "server pid $SERVER_PID, idle RSS ${RSS_IDLE_START} kB"

# --- warm-up (not recorded) ------------------------------------------------------------------
log "warming up (${WARMUP}s each)"
wrk -c"$CONNS" -t1 -d"${WARMUP}s" -s bench/random_tenant.lua "http://127.0.0.1:$PORT" > "$OUT/warmup_api.txt" 2>&1
pgbench -c"$CONNS" -j1 -T"$WARMUP" -n -M prepared -f bench/profile_tx.sql "$DB" > "$OUT/warmup_pgbench.txt" 2>&1
pgbench -c"$CONNS" -j1 -T"$WARMUP" -n -M prepared -f bench/profile_tx_pipelined.sql "$DB" >> "$OUT/warmup_pgbench.txt" 2>&1
pgbench -c"$CONNS" -j1 -T"$WARMUP" -n -M simple -f bench/profile_tx_compound_simple.sql "$DB" >> "$OUT/warmup_pgbench.txt" 2>&1

# --- interleaved rounds ----------------------------------------------------------------------
for r in $(seq 1 "$ROUNDS"); do
    run_api "$r"
    run_b4 "$r"
    run_b3p "$r"
    run_b3s "$r"
done
RSS_LOAD_MAX=$(sort -n "$OUT"/rss_load.r* | tail -1)
RSS_HWM=$(hwm_kb "$SERVER_PID")

# --- latency at ~80 % of the median max rate -------------------------------------------------
API_MEDIAN=$(awk '$1=="api"{print $3}' "$RESULTS" | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')
RATE=$(awk -v m="$API_MEDIAN" 'BEGIN{printf "%d", m*0.8}')
if [[ -z "${SKIP_OHA:-}" && -x "$OHA" ]]; then
    lw=$(wait_idle)
    log "latency: oha -q $RATE (80 % of $API_MEDIAN req/s), loadavg ${lw% *}"
    # oha sends one Host for the whole run: t500 (the tenant cache then always hits, which is
    # what ~all requests see in the throughput runs too).
    "$OHA" -z "${DURATION}s" -c "$CONNS" -q "$RATE" --no-tui --latency-correction \
        -H "Host: t500.localhost:$PORT" "http://127.0.0.1:$PORT/api/v1/tenant/profile" \
        > "$OUT/oha.txt" 2>&1 || log "oha failed (see oha.txt)"
    RSS_HWM=$(hwm_kb "$SERVER_PID")
else
    log "oha not available: latency run skipped"
fi
sleep 5
RSS_IDLE_END=$(rss_kb "$SERVER_PID")
stop_server

# --- summary ---------------------------------------------------------------------------------
python3 - "$RESULTS" "$OUT" "$RSS_IDLE_START" "$RSS_LOAD_MAX" "$RSS_HWM" "$RSS_IDLE_END" "$RATE" > "$OUT/summary.md" <<'PY'
import sys, statistics, re, os
res, out, idle0, load, hwm, idle1, rate = sys.argv[1:8]
rows = [l.rstrip("\n").split("\t") for l in open(res) if l.strip()]
kinds = ["api", "pgbench_4stmt", "pgbench_3rt_pipeline", "pgbench_3rt_simple"]
label = {
    "api": "API (wrk, req/s)",
    "pgbench_4stmt": "pgbench -M prepared, 4 statements / 4 round trips (tps)",
    "pgbench_3rt_pipeline": "pgbench -M prepared, BEGIN+set_config pipelined / 3 round trips (tps)",
    "pgbench_3rt_simple": "pgbench -M simple, `BEGIN \\; SELECT set_config` / 3 round trips (tps)",
}
by = {k: [r for r in rows if r[0] == k] for k in kinds}
med = {}
print("| run | rounds | median | min | max | client CPU µs/tx | server CPU µs/tx | machine busy µs/tx | steal s | loadavg before |")
print("|---|---|---|---|---|---|---|---|---|---|")
for k in kinds:
    rs = by[k]
    if not rs:
        continue
    v = [float(r[2]) for r in rs]
    med[k] = statistics.median(v)
    n = [float(r[2]) * float(r[6]) for r in rs]  # approx transactions
    cl = statistics.median([float(r[3]) / x * 1e6 for r, x in zip(rs, n)])
    sv = statistics.median([float(r[4]) / x * 1e6 for r, x in zip(rs, n)]) if k == "api" else 0.0
    bz = statistics.median([float(r[5]) / x * 1e6 for r, x in zip(rs, n)])
    las = ", ".join(r[7] + (f" (waited {r[8]}s)" if r[8] not in ("0",) else "") for r in rs)
    stl = " / ".join(r[9] if len(r) > 9 else "?" for r in rs)
    print(f"| {label[k]} | {' / '.join(f'{x:.0f}' for x in v)} | **{med[k]:.0f}** | {min(v):.0f} | {max(v):.0f} | {cl:.0f} | {sv:.0f} | {bz:.0f} | {stl} | {las} |")
print()
if "api" in med:
    a = [float(r[2]) for r in by["api"]]
    for k in kinds[1:]:
        if k in med:
            b = [float(r[2]) for r in by[k]]
            # per-round ratios (API round i vs pgbench round i) give the band
            pr = [x / y for x, y in zip(a, b)]
            print(f"- ratio API ÷ {label[k]}: **{med['api'] / med[k]:.3f}** (median ÷ median; per-round {', '.join(f'{x:.3f}' for x in pr)})")
print()
print(f"- server RSS: idle after start {int(idle0)/1024:.1f} MiB; under load (max of mid-run samples) {int(load)/1024:.1f} MiB; "
      f"peak (VmHWM) {int(hwm)/1024:.1f} MiB; idle after the runs {int(idle1)/1024:.1f} MiB")
oha = os.path.join(out, "oha.txt")
if os.path.exists(oha):
    t = open(oha).read()
    def grab(p):
        m = re.search(p, t)
        return m.group(1) if m else "?"
    p50 = grab(r"50(?:\.00)?% in ([0-9.]+ \w+)")
    p99 = grab(r"99(?:\.00)?% in ([0-9.]+ \w+)")
    rps = grab(r"Requests/sec:\s+([0-9.]+)")
    ok = grab(r"Success rate:\s+([0-9.]+%)")
    print(f"- latency at {rate} req/s (oha -q, Host t500): p50 {p50}, p99 {p99}, achieved {rps} req/s, success rate {ok}")
PY
cat "$OUT/summary.md"
log "raw outputs in $OUT"
