#!/usr/bin/env bash
# Scheduling benchmarks (issue 11, item 13), on a disposable database (DB, default
# serein_bench_sched: DROPPED and recreated on every run):
#   a. slots   GET /api/v1/practitioners/{p0}/slots over the longest range (62 days, tz
#              Europe/Paris) of a practitioner with 20 weekly rules and 500 active bookings in
#              the range from 5 companies: wrk at max rate (closed loop, -c SLOTS_CONNS) and hey
#              at a fixed rate (SLOTS_RATE req/s). Target p99 < 10 ms.
#   b. book    POST /api/v1/consultations without contention: every request a distinct free
#              15-minute slot of one of 100 practitioners (24/7), booked by one of 1,000
#              employees free then (bench/book.lua): 201s per second, checked against the rows
#              in the database. Target >= 1,000/s.
#   c. contend N employees (2 companies) book the SAME slot at once, on 20 slots, for N in
#              CONTEND_N (bench/contend.py): exactly one 201 per slot, the rest 409, no 5xx.
#   profile    (PROFILE=1, last) a short slots run and a short booking run with
#              log_min_duration_statement = 0 and track_functions = all on the bench database:
#              time per statement and per function, then bench/sched_probe.sh (EXPLAIN ANALYZE
#              of the policy helpers and the handlers' statements), in profile.txt.
# Data: bench/scheduling_seed.sql; tokens and session secrets minted offline by
# bench/sched_tokens.py (HS256 with this run's JWT_SECRET; secrets from SEREIN_MASTER_KEY).
#
#   bench/scheduling.sh                          # release build, then everything
#   SKIP_BUILD=1 ROUNDS=3 DURATION=20 bench/scheduling.sh
#   SKIP_BUILD=1 PHASES="book" ROUNDS=1 DURATION=5 bench/scheduling.sh   # one phase, quick
#   SKIP_BUILD=1 PROFILE=1 bench/scheduling.sh
#
# Each measurement first waits for the 1-minute load average < LOAD_MAX (default 0.6), at most
# LOAD_WAIT_MAX seconds (then it proceeds and notes the load). Raw outputs: bench/out/<ts>-sched/
# (not committed); summary.md there and on stdout.
set -euo pipefail

# Run from a private copy, so that editing this file during a run cannot derail it.
if [[ -z ${BENCH_ROOT:-} ]]; then
    BENCH_ROOT=$(cd "$(dirname "$0")/.." && pwd)
    export BENCH_ROOT
    snap=$(mktemp /tmp/bench-sched-XXXXXX.sh)
    cp "$0" "$snap"
    exec bash "$snap" "$@"
fi
cd "$BENCH_ROOT"
ROOT=$PWD

PHASES=${PHASES-slots book contend}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-20}
WARMUP=${WARMUP:-5}
SLOTS_CONNS=${SLOTS_CONNS:-8}
SLOTS_RATE=${SLOTS_RATE:-100}
BOOK_CONNS=${BOOK_CONNS:-16}
CONTEND_N=${CONTEND_N:-50 100 200}
CONTEND_SLOTS=${CONTEND_SLOTS:-20}
PROFILE=${PROFILE:-}
PROFILE_DURATION=${PROFILE_DURATION:-5}
LOAD_MAX=${LOAD_MAX:-0.6}
LOAD_WAIT_MAX=${LOAD_WAIT_MAX:-900}
PORT=${PORT:-8080}
PGHOST=${PGHOST:-127.0.0.1}
PGPORT=${PGPORT:-5432}
PGUSER=${PGUSER:-postgres}
DB=${DB:-serein_bench_sched}
DB_POOL=${DB_POOL:-16}
[[ $DB == *bench* ]] || { echo "DB must contain 'bench' (it is dropped)" >&2; exit 2; }
DATABASE_URL="postgres://${PGUSER}@${PGHOST}:${PGPORT}/${DB}"
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET/release/serein
PGLOG=${PGLOG:-/var/log/postgresql/postgresql-15-main.log}
export PGHOST PGPORT PGUSER

OUT=${OUT:-$ROOT/bench/out/$(date -u +%Y%m%dT%H%M%SZ)-sched}
mkdir -p "$OUT"
RESULTS=$OUT/results.tsv
printf 'kind\tround\tvalue\tok\tdb_rows\tnon_ok\tn5xx\tp50_ms\tp99_ms\trequests\twall_s\tserver_cpu_s\tpg_cpu_s\tpg_db_cpu_s\tclient_cpu_s\tmachine_busy_s\tloadavg\twaited_s\n' > "$RESULTS"
log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" | tee -a "$OUT/run.log" >&2; }
q() { psql -XAtq -v ON_ERROR_STOP=1 -c "$1" "$DB"; }

# --- helpers ----------------------------------------------------------------------------------
# shellcheck source=bench/lib.sh
source bench/lib.sh
# CPU seconds of the bench database's backends: "<pid> <cpu>" per live backend (the server's
# pooled connections live through a measurement; the cluster-wide pg_cpu also counts other
# databases of this shared PostgreSQL, e.g. other builders' tests).
pg_db_cpu_snapshot() {
    local p
    for p in $(pgrep -f "postgres: .* $DB " || true); do
        [[ -r /proc/$p/stat ]] && echo "$p $(proc_cpu "$p" 2>/dev/null || echo 0)"
    done
}
# CPU used by the bench database's backends between two snapshots ($1, $2: files).
pg_db_cpu_delta() {
    awk 'NR == FNR { a[$1] = $2; next } { s += $2 - (($1 in a) ? a[$1] : 0) } END { printf "%.2f", s }' "$1" "$2"
}

SERVER_PID=
stop_server() {
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    SERVER_PID=
}
reset_db_settings() {
    psql -XAtq -c "ALTER DATABASE $DB RESET log_min_duration_statement" -c "ALTER DATABASE $DB RESET track_functions" postgres 2>/dev/null || true
}
trap 'stop_server; reset_db_settings' EXIT
start_server() {
    "$BIN" serve >> "$OUT/server.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 100); do
        curl -fsS -o /dev/null "http://127.0.0.1:$PORT/health/live" 2>/dev/null && break
        sleep 0.1
    done
    [[ $(cat "/proc/$SERVER_PID/comm") == serein ]] || { log "server pid $SERVER_PID is not serein"; exit 1; }
}

if curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$PORT/health/live" 2>/dev/null; then
    echo "something already serves 127.0.0.1:$PORT (another benchmark running?): refusing to measure" >&2
    exit 1
fi
command -v wrk > /dev/null || { echo "wrk missing: apt-get install -y wrk" >&2; exit 1; }
command -v hey > /dev/null || { echo "hey missing: apt-get install -y hey" >&2; exit 1; }

# --- machine ---------------------------------------------------------------------------------
{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "nproc: $(nproc)"
    echo "cpu: $(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)"
    echo "kernel: $(uname -r)"
    echo "postgres: $(psql -XAtc 'select version()' postgres)"
    echo "postgres settings: $(psql -XAtc "select string_agg(name || '=' || setting, ' ' order by name) from pg_settings where name in ('fsync','synchronous_commit','shared_buffers','ssl','max_connections','wal_level')" postgres)"
    echo "wrk: $(wrk -v 2>&1 | head -1)"
    echo "hey: $(dpkg-query -W -f='${Version}' hey 2>/dev/null || echo '?')"
    echo "git: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)$(git -C "$ROOT" diff --quiet HEAD -- src migrations 2>/dev/null || echo ' (src or migrations dirty)')"
    echo "settings: ROUNDS=$ROUNDS DURATION=$DURATION SLOTS_CONNS=$SLOTS_CONNS SLOTS_RATE=$SLOTS_RATE BOOK_CONNS=$BOOK_CONNS DB_POOL=$DB_POOL CONTEND_N='$CONTEND_N' CONTEND_SLOTS=$CONTEND_SLOTS"
} > "$OUT/machine.txt"
cat "$OUT/machine.txt" >&2

# --- build, database, seed, tokens -----------------------------------------------------------
if [[ -z "${SKIP_BUILD:-}" ]]; then
    log "building (cargo build --release, target $TARGET)"
    CARGO_TARGET_DIR=$TARGET cargo build --release --quiet --bin serein
fi
JWT_SECRET=${JWT_SECRET:-$(head -c 48 /dev/urandom | base64 | tr -d '=+/\n')}
# Fixed by default (the bench database is rebuilt each run; nothing else uses this key).
SEREIN_MASTER_KEY=${SEREIN_MASTER_KEY:-5e4e1bbe0c0ffee05c4ed0000000000000000000000000000000000000000b01}
SEREIN_DATA_DIR=${SEREIN_DATA_DIR:-/tmp/serein-bench-sched-data}
mkdir -p "$SEREIN_DATA_DIR"
export JWT_SECRET SEREIN_MASTER_KEY SEREIN_DATA_DIR \
    RATE_LIMIT_PER_IP_PER_SEC=1000000 RATE_LIMIT_PER_IP_BURST=1000000 \
    AUTH_RATE_LIMIT_PER_MIN=1000000 AUTH_RATE_LIMIT_BURST=1000000 LOGIN_MAX_FAILURES=1000 \
    MAIL_WORKER=false JOBS_WORKER=false
export DATABASE_URL BIND="127.0.0.1:$PORT" RUST_LOG=warn SEREIN_TENANTS_DIR= DB_MAX_CONNECTIONS=$DB_POOL

log "recreating $DB"
dropdb --if-exists "$DB"
"$BIN" migrate > "$OUT/migrate.log" 2>&1 || { cat "$OUT/migrate.log" >&2; exit 1; }

# The slots range: from the next UTC midnight, 62 days (the longest the API takes).
ANCHOR=$(date -u -d 'tomorrow 00:00' +%Y-%m-%dT%H:%M:%SZ)
ANCHOR_S=$(date -u -d "$ANCHOR" +%s)
RANGE_END=$(date -u -d "@$((ANCHOR_S + 62 * 86400))" +%Y-%m-%dT%H:%M:%SZ)
log "seeding (anchor $ANCHOR)"
psql -X -q -v ON_ERROR_STOP=1 -v anchor="$ANCHOR" -f bench/scheduling_seed.sql "$DB" > "$OUT/seed.log"
cat "$OUT/seed.log" >&2

mint_sessions 'select i, grp, slug, tid, user_id, session_id from bench_sched_sessions order by i'
log "tokens minted: $(wc -l < "$OUT/tokens_a.txt") (a) $(wc -l < "$OUT/tokens_b.txt") (b) $(wc -l < "$OUT/tokens_c.txt") (c)"

P0=00000000-0000-4000-c000-000000000000
PC=00000000-0000-4000-c000-000000000101
for p in $(seq 1 100); do printf '00000000-0000-4000-c000-%012d\n' "$p"; done > "$OUT/practitioners_b.txt"
SLOTS_PATH="/api/v1/practitioners/$P0/slots?from=$ANCHOR&to=$RANGE_END&tz=Europe/Paris"
BOOK_BASE=$((ANCHOR_S + 2 * 86400))       # measurement b: 15-minute slots from here
CONTEND_BASE=$((ANCHOR_S + 3 * 86400 + 9 * 3600))   # measurement c: 60-minute slots, 2 h apart

log "starting server (pool $DB_POOL)"
start_server
first_a=$(head -1 "$OUT/tokens_a.txt")
HOST_A=${first_a%% *}; TOKEN_A=${first_a#* }
curl -sS -o "$OUT/slots_sample.json" -w '%{http_code} %{size_download} bytes %{time_total}s\n' \
    -H "Host: $HOST_A:$PORT" -H "Authorization: Bearer $TOKEN_A" "http://127.0.0.1:$PORT$SLOTS_PATH" | tee "$OUT/slots_sample.txt" >&2
SLOTS_N=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["slots"]))' "$OUT/slots_sample.json")
SLOTS_BYTES=$(wc -c < "$OUT/slots_sample.json")
BUSY_N=$(psql -XAt -c "select count(*) from unnest((select range_agg(period) from consultations where practitioner_id = '$P0' and status in ('requested','confirmed','started') and period && tstzrange('$ANCHOR'::timestamptz - interval '3 hours', '$RANGE_END'::timestamptz + interval '3 hours'))) r" "$DB")
log "slots sample: $SLOTS_N slots, $SLOTS_BYTES bytes; busy intervals in the range: $BUSY_N"
echo "server RSS idle: $(awk '/^VmRSS/{print $2}' "/proc/$SERVER_PID/status") kB" >> "$OUT/machine.txt"

# Run one measurement: $1 kind, $2 round, rest the command (stdout to <kind>.r<round>.txt).
# Sets M_WALL M_SRV M_PG M_PGDB M_CLI M_BUSY M_LA M_WAITED.
measure() {
    local kind=$1 round=$2; shift 2
    local f=$OUT/$kind.r$round.txt lw s0 s1 p0 p1 b0 b1 t0 t1
    lw=$(wait_idle); M_LA=${lw% *}; M_WAITED=${lw#* }
    log "$kind round $round (loadavg $M_LA, waited ${M_WAITED}s)"
    pg_db_cpu_snapshot > "$OUT/.pgdb0"
    s0=$(proc_cpu "$SERVER_PID"); p0=$(pg_cpu); b0=$(machine_busy); t0=$(date +%s.%N)
    local TIMEFORMAT='%U %S'
    { time "$@" > "$f" 2> "$f.err"; } 2> "$f.time"
    t1=$(date +%s.%N); s1=$(proc_cpu "$SERVER_PID"); p1=$(pg_cpu); b1=$(machine_busy)
    pg_db_cpu_snapshot > "$OUT/.pgdb1"; M_PGDB=$(pg_db_cpu_delta "$OUT/.pgdb0" "$OUT/.pgdb1")
    M_WALL=$(sub "$t0" "$t1"); M_SRV=$(sub "$s0" "$s1"); M_PG=$(sub "$p0" "$p1"); M_BUSY=$(sub "$b0" "$b1")
    M_CLI=$(awk '{printf "%.2f", $1 + $2}' "$f.time")
}
row() {  # kind round value ok db_rows non_ok n5xx p50 p99 requests
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" "$M_WALL" "$M_SRV" "$M_PG" "$M_PGDB" "$M_CLI" "$M_BUSY" "$M_LA" "$M_WAITED" >> "$RESULTS"
}

# --- a. slots --------------------------------------------------------------------------------
if [[ " $PHASES " == *" slots "* ]]; then
    slots_wrk() { TOKENS=$OUT/tokens_a.txt URL_PATH=$SLOTS_PATH PORT=$PORT wrk -c"$SLOTS_CONNS" -t1 -d"$1" --latency -s bench/me.lua "http://127.0.0.1:$PORT"; }
    slots_wrk "${WARMUP}s" > "$OUT/slots_warmup.txt" 2>&1
    per=$(( (SLOTS_RATE + 3) / 4 ))
    for r in $(seq 1 "$ROUNDS"); do
        measure slots_max "$r" slots_wrk "${DURATION}s"
        f=$OUT/slots_max.r$r.txt
        n=$(awk '/requests in/{print $1}' "$f"); bad=$(awk '/Non-2xx/{print $NF}' "$f"); bad=${bad:-0}
        row slots_max "$r" "$(awk '/^Requests\/sec:/{print $2}' "$f")" "$((n - bad))" - "$bad" - "$(wrk_pct "$f" 50)" "$(wrk_pct "$f" 99)" "$n"
        log "  -> $(awk '/^Requests\/sec:/{print $2}' "$f") req/s, p50 $(wrk_pct "$f" 50) ms, p99 $(wrk_pct "$f" 99) ms, non-2xx $bad"
        # Fixed rate: hey, 4 workers x $per req/s, one employee of t1 (hey sends one header set).
        measure slots_rate "$r" hey -z "${DURATION}s" -c 4 -q "$per" -host "$HOST_A:$PORT" \
            -H "Authorization: Bearer $TOKEN_A" "http://127.0.0.1:$PORT$SLOTS_PATH"
        f=$OUT/slots_rate.r$r.txt
        h50=$(awk '/ 50% in /{printf "%.2f", $3 * 1000}' "$f"); h99=$(awk '/ 99% in /{printf "%.2f", $3 * 1000}' "$f")
        ok=$(awk '/\[200\]/{print $2}' "$f"); tot=$(awk '/\[[0-9]+\]/{s += $2} END{print s + 0}' "$f")
        row slots_rate "$r" "$(awk '/Requests\/sec:/{print $2}' "$f")" "${ok:-0}" - "$((tot - ${ok:-0}))" - "$h50" "$h99" "$tot"
        log "  -> fixed rate: $(awk '/Requests\/sec:/{print $2}' "$f") req/s, p50 $h50 ms, p99 $h99 ms"
    done
fi

# --- b. booking throughput, no contention ----------------------------------------------------
reset_book() {
    q "DELETE FROM consultations WHERE practitioner_id IN (SELECT ('00000000-0000-4000-c000-' || lpad(p::text, 12, '0'))::uuid FROM generate_series(1, 100) p)"
    psql -XAtq -c "VACUUM (ANALYZE) consultations" -c "VACUUM (ANALYZE) consultation_events" -c "VACUUM (ANALYZE) jobs" "$DB"
}
book_rows() {
    q "SELECT count(*) FROM consultations WHERE practitioner_id IN (SELECT ('00000000-0000-4000-c000-' || lpad(p::text, 12, '0'))::uuid FROM generate_series(1, 100) p) AND status = 'confirmed'"
}
book_wrk() {
    TOKENS=$OUT/tokens_b.txt PRACTITIONERS=$OUT/practitioners_b.txt BASE=$BOOK_BASE PORT=$PORT \
        wrk -t1 -c"$BOOK_CONNS" -d"$1" --latency -s bench/book.lua "http://127.0.0.1:$PORT"
}
if [[ " $PHASES " == *" book "* ]]; then
    reset_book
    book_wrk "${WARMUP}s" > "$OUT/book_warmup.txt" 2>&1
    log "booking warm-up: $(grep -E '^status 201' "$OUT/book_warmup.txt")"
    for r in $(seq 1 "$ROUNDS"); do
        reset_book
        measure book "$r" book_wrk "${DURATION}s"
        sleep 1
        f=$OUT/book.r$r.txt
        n201=$(awk '/^status 201:/{print $3}' "$f")
        non=$(awk '/^status (409|other 4xx|5xx|other):/{s += $NF} END{print s + 0}' "$f")
        n5xx=$(awk '/^status 5xx:/{print $3}' "$f")
        secs=$(awk '/requests in/{sub(/s,$/, "", $4); print $4}' "$f")
        rows=$(book_rows)
        rate=$(awk -v n="$n201" -v s="$secs" 'BEGIN{printf "%.1f", n / s}')
        row book "$r" "$rate" "$n201" "$rows" "$non" "$n5xx" "$(wrk_pct "$f" 50)" "$(wrk_pct "$f" 99)" "$((n201 + non))"
        log "  -> $rate bookings/s (201: $n201, rows in the database: $rows, non-201: $non, 5xx: $n5xx), p50 $(wrk_pct "$f" 50) ms, p99 $(wrk_pct "$f" 99) ms"
    done
fi

# --- c. contention on one slot ---------------------------------------------------------------
reset_contend() {
    q "DELETE FROM consultations WHERE practitioner_id = '$PC'"
    psql -XAtq -c "VACUUM (ANALYZE) consultations" "$DB"
}
if [[ " $PHASES " == *" contend "* ]]; then
    for n in $CONTEND_N; do
        reset_contend
        measure "contend_n$n" 1 python3 bench/contend.py --tokens "$OUT/tokens_c.txt" --practitioner "$PC" \
            --base "$CONTEND_BASE" --n "$n" --slots "$CONTEND_SLOTS" --port "$PORT" --out "$OUT/contend_n$n.tsv"
        f=$OUT/contend_n$n.r1.txt
        db=$(q "SELECT count(*) || ' rows, ' || count(DISTINCT starts_at) || ' distinct slots' FROM consultations WHERE practitioner_id = '$PC' AND status IN ('requested', 'confirmed', 'started')")
        echo "database: $db" >> "$f"
        ok=$(awk '/slots with exactly one 201/{split($0, a, "201: "); split(a[2], b, "/"); print b[1] + 0}' "$f")
        n5xx=$(awk '/slots with exactly one 201/{print $NF}' "$f")
        p50=$(awk '/^latency/{for (i = 1; i <= NF; i++) if ($i == "p50") {v = $(i + 1); sub(/,/, "", v); print v}}' "$f")
        p99=$(awk '/^latency/{for (i = 1; i <= NF; i++) if ($i == "p99") {v = $(i + 1); sub(/,/, "", v); print v}}' "$f")
        row "contend_n$n" 1 "$(grep -o 'VERDICT.*' "$f" | cut -d' ' -f2)" "$ok/$CONTEND_SLOTS" "${db%% *}" "$(( n * CONTEND_SLOTS - $(awk '/^answers:/{for (i = 1; i < NF; i++) if ($i == "201:") {v = $(i + 1); sub(/,/, "", v); print v + 0}}' "$f") ))" "$n5xx" "$p50" "$p99" "$(( n * CONTEND_SLOTS ))"
        log "  -> $(grep -E '^n=|^answers|^latency|^VERDICT' "$f" | tr '\n' ' '); database: $db"
    done
fi

# --- profile ---------------------------------------------------------------------------------
# $1 = name (slots|book), $2 = how many requests succeeded (computed after), rest = command.
profile_run() {
    local name=$1; shift
    log "profile $name: a ${PROFILE_DURATION}s run with log_min_duration_statement = 0, track_functions = all"
    stop_server
    reset_book
    psql -XAtq -c "ALTER DATABASE $DB SET log_min_duration_statement = 0" -c "ALTER DATABASE $DB SET track_functions = 'all'" postgres
    start_server
    q "SELECT pg_stat_reset()"
    local mark; mark=$(stat -c %s "$PGLOG")
    "$@" > "$OUT/profile_$name.wrk.txt" 2>&1
    sleep 1
    stop_server
    reset_db_settings
    sleep 11   # idle backends report their function counters within PGSTAT_IDLE_INTERVAL
    tail -c +"$((mark + 1))" "$PGLOG" | awk -v db="@$DB " '
        /^[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9] / { keep = index($0, db) > 0 }
        keep' > "$OUT/profile_$name.statements.log"
    local n
    if [[ $name == book ]]; then
        n=$(awk '/^status 201:/{print $3}' "$OUT/profile_$name.wrk.txt")
    else
        n=$(awk '/requests in/{print $1}' "$OUT/profile_$name.wrk.txt")
    fi
    {
        echo "profile $name: ${PROFILE_DURATION}s, $n successful requests, $(grep -E '^Requests/sec' "$OUT/profile_$name.wrk.txt")"
        echo
        echo "per statement (server-side durations from the log: parse, bind, execute; ms per request):"
        python3 - "$OUT/profile_$name.statements.log" "$n" <<'PY'
import re, sys
log, n = sys.argv[1], max(int(sys.argv[2] or 1), 1)
tot, cnt = {}, {}
for line in open(log):
    m = re.search(r"duration: ([0-9.]+) ms  (?:(parse|bind|execute) [^:]*|statement): (.*)$", line)
    if not m:
        continue
    phase = m.group(2) or "simple"
    text = re.sub(r"'[^']*'", "'…'", m.group(3))[:120]
    k = (text, phase)
    tot[k] = tot.get(k, 0) + float(m.group(1))
    cnt[k] = cnt.get(k, 0) + 1
rows = sorted(tot.items(), key=lambda kv: -kv[1])
print(f"  total {sum(tot.values()) / n:.3f} ms per request over {sum(cnt.values())} log entries")
print("  ms/request  calls/request  phase    statement")
for (text, phase), ms in rows[:25]:
    print(f"  {ms / n:10.3f}  {cnt[(text, phase)] / n:13.2f}  {phase:8} {text}")
PY
        echo
        echo "functions (pg_stat_user_functions; ms per request; total includes callees):"
        psql -XA -F $'\t' -c "SELECT schemaname || '.' || funcname AS function, round(calls::numeric / $n, 2) AS calls_per_req, round((total_time / $n)::numeric, 3) AS total_ms, round((self_time / $n)::numeric, 3) AS self_ms FROM pg_stat_user_functions ORDER BY total_time DESC LIMIT 25" "$DB" | sed 's/^/  /'
        echo
    } >> "$OUT/profile.txt" 2>&1
    start_server
}
if [[ -n $PROFILE ]]; then
    : > "$OUT/profile.txt"
    profile_run slots env TOKENS="$OUT/tokens_a.txt" URL_PATH="$SLOTS_PATH" PORT="$PORT" wrk -c"$SLOTS_CONNS" -t1 -d"${PROFILE_DURATION}s" --latency -s bench/me.lua "http://127.0.0.1:$PORT"
    profile_run book book_wrk "${PROFILE_DURATION}s"
    wait_idle > /dev/null
    { echo "bench/sched_probe.sh (loadavg $(loadavg1)):"; ANCHOR=$ANCHOR bench/sched_probe.sh "$DB"; } >> "$OUT/profile.txt" 2>&1
    cat "$OUT/profile.txt" >&2
fi

stop_server

# --- summary ---------------------------------------------------------------------------------
python3 - "$RESULTS" "$SLOTS_N" "$SLOTS_BYTES" "$BUSY_N" > "$OUT/summary.md" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
slots_n, slots_bytes, busy_n = sys.argv[2:5]
def f(x):
    try:
        return float(x)
    except ValueError:
        return float("nan")
def band(xs, d=1):
    xs = [x for x in xs if x == x]
    if not xs:
        return "?"
    return f"**{statistics.median(xs):.{d}f}** ({min(xs):.{d}f}–{max(xs):.{d}f})"
kinds = []
for r in rows:
    if r["kind"] not in kinds:
        kinds.append(r["kind"])
print(f"Slots answer: {slots_n} slots, {slots_bytes} bytes (62 days, tz Europe/Paris); {busy_n} merged busy intervals in the range.\n")
print("| measurement | rounds | value median (min–max) | p50 ms | p99 ms | ok | non-ok | 5xx | DB rows | server CPU µs/req | bench DB backends CPU µs/req | all PostgreSQL CPU µs/req | client CPU µs/req | machine busy µs/req | loadavg before |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for k in kinds:
    rs = [r for r in rows if r["kind"] == k]
    per = lambda col: statistics.median([f(r[col]) / max(f(r["requests"]), 1) * 1e6 for r in rs])
    val = band([f(r["value"]) for r in rs]) if not k.startswith("contend") else " / ".join(r["value"] for r in rs)
    print(f"| {k} | {len(rs)} | {val} | {band([f(r['p50_ms']) for r in rs], 2)} | {band([f(r['p99_ms']) for r in rs], 2)} | "
          f"{' / '.join(r['ok'] for r in rs)} | {' / '.join(r['non_ok'] for r in rs)} | {' / '.join(r['n5xx'] for r in rs)} | "
          f"{' / '.join(r['db_rows'] for r in rs)} | {per('server_cpu_s'):.0f} | {per('pg_db_cpu_s'):.0f} | {per('pg_cpu_s'):.0f} | {per('client_cpu_s'):.0f} | {per('machine_busy_s'):.0f} | "
          f"{', '.join(r['loadavg'] + ('' if r['waited_s'] == '0' else ' (waited ' + r['waited_s'] + 's)') for r in rs)} |")
PY
{
    echo
    for f in "$OUT"/contend_n*.r1.txt; do [[ -e $f ]] && { echo '```'; cat "$f"; echo '```'; }; done
} >> "$OUT/summary.md"
cat "$OUT/summary.md"
log "raw outputs in $OUT"
