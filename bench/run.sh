#!/usr/bin/env bash
# Benchmarks of the API against pgbench running the same SQL on the same data with the same
# client count. Three modes:
#   MODE=profile (default)  GET /api/v1/tenant/profile, anonymous, random tenant per request
#   MODE=me                 GET /api/v1/auth/me with a bearer access token (HS256, minted offline
#                           by bench/mint_tokens.py), random tenant AND user per request: token
#                           verification + app_private.session_guard in the context statement
#   MODE=members            GET /api/v1/members?limit=20 as the tenant admin of a random tenant
#                           (a 20-row authenticated list read), with its pgbench twin
#   MODE=express            GET /api/v1/auth/me against the seeds' own stack (bench/express: Express 4
#                           + node-postgres + jsonwebtoken, same token, same four statements
#                           prepared), one process and a cluster of two, interleaved with Serein
#   MODE=login              POST /api/v1/auth/login, distinct seeded users, Argon2id-bound;
#                           wrk at LOGIN_CONNS connections (default "1 2 4 8"), no pgbench
#
#   bench/run.sh                    # build, start, seed if needed, warm up, 3 interleaved rounds
#   ROUNDS=3 DURATION=20 bench/run.sh
#   SKIP_BUILD=1 SKIP_OHA=1 bench/run.sh
#   SKIP_BUILD=1 MODE=me bench/run.sh;  SKIP_BUILD=1 MODE=login bench/run.sh
#   SSLMODE=disable bench/run.sh    # no TLS between server/pgbench and Postgres (default: prefer)
#
# The server runs with a random per-run JWT_SECRET, SEREIN_DATA_DIR outside the repo, and its
# rate limits (per IP, per account) set far above any rate reached here.
#
# Writes raw outputs to bench/out/<timestamp>/ and prints a summary (also in summary.md there).
# Measurements (each preceded by a wait for the 1-minute load average < LOAD_MAX, or with
# IDLE_BUSY_MAX=0.03 for the machine measured < 3 % busy over 5 s; see wait_idle):
#   A    wrk -c8 -t1 -d20s -s bench/random_tenant.lua            (the API)
#   B4   pgbench -M prepared -c8 -j1 -T20 -n -f bench/profile_tx.sql            (4 round trips)
#   B3p  pgbench -M prepared ... -f bench/profile_tx_pipelined.sql  (BEGIN+set_config pipelined: 3)
#   B3s  pgbench -M simple   ... -f bench/profile_tx_compound_simple.sql (`BEGIN \; SELECT set_config`)
# then a latency run at ~80 % of the median API rate (oha -q, or hey -q), and RSS idle / under load.
# MODE=me measures (same interleaving):
#   api_me   wrk -c8 -t1 -d20s -s bench/me.lua                       (the API)
#   M4       pgbench -M prepared ... -f bench/me_tx.sql               (4 round trips)
#   M3p      pgbench -M prepared ... -f bench/me_tx_pipelined.sql     (3, pipelined)
#   M3s      pgbench -M simple   ... -f bench/me_tx_compound_simple.sql (the server's shape)
#   B4       pgbench -M prepared ... -f bench/profile_tx.sql          (the foundation's, continuity)
#   api      wrk ... -s bench/random_tenant.lua: the anonymous profile read on the same server
#            (the foundation's API figure under the same conditions; SKIP_PROFILE=1 skips it)
# MODE=members measures (same interleaving):
#   api_members  wrk ... -s bench/me.lua with URL_PATH=/api/v1/members?limit=20 (admins' tokens)
#   L4           pgbench -M prepared ... -f bench/members_tx.sql          (4 round trips)
# MODE=login measures wrk -c<c> -t1 -d20s --latency -s bench/login.lua for each c in LOGIN_CONNS.
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

MODE=${MODE:-profile}
case $MODE in profile|me|members|express|login) ;; *) echo "MODE must be profile, me, members, express or login" >&2; exit 2 ;; esac
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
HEY=${HEY:-$(command -v hey || true)}
LOGIN_CONNS=${LOGIN_CONNS:-1 2 4 8}
BENCH_PASSWORD=${BENCH_PASSWORD:-serein-bench-Passw0rd-7f3a}
export PGHOST PGPORT PGUSER

SUFFIX=; [[ $MODE == profile ]] || SUFFIX=-$MODE
OUT=${OUT:-$ROOT/bench/out/$(date -u +%Y%m%dT%H%M%SZ)$SUFFIX}
mkdir -p "$OUT"
RESULTS=$OUT/results.tsv   # kind round value(req/s|tps) client_cpu_s server_cpu_s machine_busy_s wall_s loadavg_before waited_s steal_s db_xacts pg_cpu_s
: > "$RESULTS"
log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" | tee -a "$OUT/run.log" >&2; }

# --- helpers -------------------------------------------------------------------------------

loadavg1() { cut -d' ' -f1 /proc/loadavg; }

# Busy fraction of the whole machine (all cores, 0..1) over the next $1 seconds, /proc/stat.
busy_fraction() {
    local a b
    a=$(awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat)
    sleep "$1"
    b=$(awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat)
    awk -v a="$a" -v b="$b" 'BEGIN{split(a, x, " "); split(b, y, " "); t = y[2] - x[2];
        printf "%.3f\n", (t > 0 ? (y[1] - x[1]) / t : 1)}'
}
# Wait until the 1-minute load average is below LOAD_MAX (poll every 10 s, give up after
# LOAD_WAIT_MAX seconds and note it). Prints "<loadavg> <waited_seconds>[!]".
# With IDLE_BUSY_MAX (e.g. 0.03), also accept a machine measured idle right now: busy less
# than that fraction of all cores over IDLE_SAMPLE (5) seconds. The 1-minute average decays
# for ~50 s after each of our own 20 s runs although nothing runs any more; this check still
# refuses to start while anything else (a compiler, another benchmark) uses the CPU.
wait_idle() {
    local waited=0 la bf
    while :; do
        la=$(loadavg1)
        if awk -v a="$la" -v m="$LOAD_MAX" 'BEGIN{exit !(a < m)}'; then
            echo "$la $waited"; return
        fi
        if [[ -n ${IDLE_BUSY_MAX:-} ]]; then
            bf=$(busy_fraction "${IDLE_SAMPLE:-5}")
            waited=$((waited + ${IDLE_SAMPLE:-5}))
            if awk -v a="$bf" -v m="$IDLE_BUSY_MAX" 'BEGIN{exit !(a < m)}'; then
                echo "$la,busy=$bf $waited"; return
            fi
        fi
        if (( waited >= LOAD_WAIT_MAX )); then
            log "load average still $la after ${waited}s: proceeding anyway"
            echo "$la${bf:+,busy=$bf} ${waited}!"; return
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
# CPU seconds used by PostgreSQL so far: every live postgres process (backends, background
# workers) plus what the postmaster collected from exited children (pgbench's backends end
# with their run). The postmaster is the postgres process whose parent is not postgres.
pg_cpu() {
    # (processes come and go while /proc is read: cat skips the vanished ones)
    { cat /proc/[0-9]*/stat 2>/dev/null || true; } |
        awk -v hz="$(getconf CLK_TCK)" '$2 == "(postgres)" { pid[$1] = 1; ppid[$1] = $4; own[$1] = $14 + $15; kids[$1] = $16 + $17 }
            END { for (p in pid) { s += own[p]; if (!(ppid[p] in pid)) s += kids[p] } printf "%.2f\n", s / hz }'
}
# Transactions committed + rolled back in the bench database so far (pg_stat_database).
db_xacts() { psql -XAtc "select xact_commit + xact_rollback from pg_stat_database where datname = '$DB'" postgres; }
rss_kb() { awk '/^VmRSS/{print $2}' "/proc/$1/status"; }
# CPU seconds and RSS of a process and its children (a node cluster: the primary + workers).
tree_cpu() {
    local p s=0
    for p in "$1" $(pgrep -P "$1" || true); do s=$(awk -v s="$s" -v p="$(proc_cpu "$p")" 'BEGIN{printf "%.2f", s + p}'); done
    echo "$s"
}
tree_rss_kb() {
    local p s=0
    for p in "$1" $(pgrep -P "$1" || true); do s=$((s + $(rss_kb "$p"))); done
    echo "$s"
}
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
    local s0 c0 b0 t0 t1 s1 b1 ccpu x0 x1 p0 p1
    x0=$(db_xacts); p0=$(pg_cpu)
    local mpid=${MEASURE_PID:-$SERVER_PID}
    s0=$(tree_cpu "$mpid"); b0=$(machine_busy); st0=$(machine_steal); t0=$(date +%s.%N)
    # Sample the server's RSS half-way through (API runs only).
    local sampler=
    if [[ $kind == api* || $kind == login* ]]; then
        ( sleep $((DURATION / 2)); tree_rss_kb "$mpid" > "$OUT/rss_load.${kind}.r${round}" ) &
        sampler=$!
    fi
    # bash's `time` reports the client's own CPU (user + sys of the child).
    local TIMEFORMAT='%U %S'
    { time "$@" > "$f" 2> "$f.err"; } 2> "$f.time"
    t1=$(date +%s.%N); s1=$(tree_cpu "$mpid"); b1=$(machine_busy); st1=$(machine_steal)
    if [[ -n $sampler ]]; then wait "$sampler" 2>/dev/null || true; fi
    # Transactions the database committed or rolled back meanwhile. pgbench's backends report
    # their counters when they exit; the server's pooled connections stay open and an idle
    # backend reports only after PGSTAT_IDLE_INTERVAL (10 s, PostgreSQL 15): wait 11 s then.
    if [[ $kind == api* || $kind == login* ]]; then sleep 11; else sleep 1; fi
    x1=$(db_xacts); p1=$(pg_cpu)
    ccpu=$(awk '{printf "%.2f", $1+$2}' "$f.time")
    local value
    case $kind in
        api*|login*) value=$(awk '/^Requests\/sec:/{print $2}' "$f")
              if grep -q "Non-2xx" "$f"; then log "WARNING: non-2xx responses in $f"; fi ;;
        *)    value=$(awk '/^tps = /{print $3}' "$f")
              if grep -q "failed transactions: [1-9]" "$f"; then log "WARNING: failed transactions in $f"; fi ;;
    esac
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$kind" "$round" "$value" "$ccpu" \
        "$(awk -v a="$s0" -v b="$s1" 'BEGIN{printf "%.2f", b-a}')" \
        "$(awk -v a="$b0" -v b="$b1" 'BEGIN{printf "%.2f", b-a}')" \
        "$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}')" "$la" "$waited" \
        "$(awk -v a="$st0" -v b="$st1" 'BEGIN{printf "%.2f", b-a}')" "$((x1 - x0))" \
        "$(awk -v a="$p0" -v b="$p1" 'BEGIN{printf "%.2f", b-a}')" >> "$RESULTS"
    log "  -> $value"
}

WRK=(wrk -c"$CONNS" -t1 -d"${DURATION}s" --latency -s bench/random_tenant.lua "http://127.0.0.1:$PORT")
PGB=(pgbench -c"$CONNS" -j1 -T"$DURATION" -n)
run_api()  { measure api  "$1" "${WRK[@]}"; }
run_b4()   { measure pgbench_4stmt        "$1" "${PGB[@]}" -M prepared -f bench/profile_tx.sql "$DB"; }
run_b3p()  { measure pgbench_3rt_pipeline "$1" "${PGB[@]}" -M prepared -f bench/profile_tx_pipelined.sql "$DB"; }
run_b3s()  { measure pgbench_3rt_simple   "$1" "${PGB[@]}" -M simple -f bench/profile_tx_compound_simple.sql "$DB"; }
# MODE=me
TOKENS=$OUT/tokens.txt
run_api_me() { TOKENS=$TOKENS PORT=$PORT measure api_me "$1" wrk -c"$CONNS" -t1 -d"${DURATION}s" --latency -s bench/me.lua "http://127.0.0.1:$PORT"; }
run_m4()   { measure pgbench_me_4stmt        "$1" "${PGB[@]}" -M prepared -f bench/me_tx.sql "$DB"; }
run_m3p()  { measure pgbench_me_3rt_pipeline "$1" "${PGB[@]}" -M prepared -f bench/me_tx_pipelined.sql "$DB"; }
run_m3s()  { measure pgbench_me_3rt_simple   "$1" "${PGB[@]}" -M simple -f bench/me_tx_compound_simple.sql "$DB"; }
# MODE=members
ADMIN_TOKENS=$OUT/admin_tokens.txt
MEMBERS_PATH='/api/v1/members?limit=20'
run_api_members() { TOKENS=$ADMIN_TOKENS URL_PATH=$MEMBERS_PATH PORT=$PORT measure api_members "$1" wrk -c"$CONNS" -t1 -d"${DURATION}s" --latency -s bench/me.lua "http://127.0.0.1:$PORT"; }
run_l4()   { measure pgbench_members_4stmt   "$1" "${PGB[@]}" -M prepared -f bench/members_tx.sql "$DB"; }
# MODE=express: $2 = workers; the Express server of that configuration listens on PORT + $2.
declare -A EXPRESS_PID=() RSS_IDLE_EXPRESS=()
run_express() { MEASURE_PID=${EXPRESS_PID[$2]} TOKENS=$TOKENS PORT=$((PORT + $2)) measure "api_express_w$2" "$1" wrk -c"$CONNS" -t1 -d"${DURATION}s" --latency -s bench/me.lua "http://127.0.0.1:$((PORT + $2))"; }
# MODE=login
run_login() { PASSWORD=$BENCH_PASSWORD PORT=$PORT measure "login_c$2" "$1" wrk -c"$2" -t1 -d"${DURATION}s" --latency -s bench/login.lua "http://127.0.0.1:$PORT"; }

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

echo "mode: $MODE" >> "$OUT/machine.txt"

# --- build, migrate, seed --------------------------------------------------------------------
if [[ -z "${SKIP_BUILD:-}" ]]; then
    log "building (CARGO_TARGET_DIR=$TARGET)"
    CARGO_TARGET_DIR=$TARGET cargo build --release --quiet --bin serein
fi

# Identity settings: a random signing secret for this run (the tokens of MODE=me are minted
# with it), a data dir outside the repo, and rate limits far above anything reached here (the
# defaults — 50 req/s per IP, 10 logins/min per account — would answer 429 to a load test).
JWT_SECRET=${JWT_SECRET:-$(head -c 48 /dev/urandom | base64 | tr -d '=+/\n')}
# A random master key per run too: the session secrets the guard demands derive from it
# (bench/mint_tokens.py --secrets), and are loaded into the bench database below.
SEREIN_MASTER_KEY=${SEREIN_MASTER_KEY:-$(python3 -c 'import os; print(os.urandom(32).hex())')}
SEREIN_DATA_DIR=${SEREIN_DATA_DIR:-/tmp/serein-bench-data}
mkdir -p "$SEREIN_DATA_DIR"
export JWT_SECRET SEREIN_MASTER_KEY SEREIN_DATA_DIR \
    RATE_LIMIT_PER_IP_PER_SEC=1000000 RATE_LIMIT_PER_IP_BURST=1000000 \
    AUTH_RATE_LIMIT_PER_MIN=1000000 AUTH_RATE_LIMIT_BURST=1000000 LOGIN_MAX_FAILURES=1000
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
if [[ $MODE != profile ]]; then
    seeded=$(psql -XAtc "select (select count(*) from sessions where id::text like '00000000-0000-4000-b000-%' and revoked_at is null and idle_expires_at > now()) = 11000 and exists (select 1 from tenants where id = '00000000-0000-0000-0000-000000000000') and to_regclass('bench_secrets') is not null" "$DB")
    if [[ $seeded != t ]]; then
        log "seeding $DB sessions (10 employees + 1 admin per tenant, bench/seed_me.sql)"
        psql -X -q -v ON_ERROR_STOP=1 -f bench/seed_me.sql "$DB" > "$OUT/seed_me.log"
    else
        log "$DB sessions already seeded"
    fi
    # This run's session secrets (its master key): the secret for the pgbench twins, its hash
    # for the guard.
    SEREIN_MASTER_KEY=$SEREIN_MASTER_KEY python3 bench/mint_tokens.py --secrets > "$OUT/secrets.tsv"
    psql -X -q -v ON_ERROR_STOP=1 "$DB" > "$OUT/secrets.log" <<SQL
BEGIN;
TRUNCATE bench_secrets;
\copy bench_secrets FROM '$OUT/secrets.tsv'
UPDATE sessions s SET secret_hash = sha256(b.secret)
FROM bench_secrets b WHERE s.id = ('00000000-0000-4000-b000-' || (100000000000 + b.i))::uuid;
COMMIT;
VACUUM (ANALYZE) bench_secrets;
VACUUM (ANALYZE) sessions;
SQL
    rm -f "$OUT/secrets.tsv"
    log "session secrets of this run's master key loaded ($(psql -XAtc 'select count(*) from bench_secrets' "$DB"))"
fi
if [[ $MODE == login ]]; then
    # One hash made by the server itself (its configured Argon2id parameters), copied to the
    # login users (u<g>@t<n>.bench.example, g % 1000 in 100..149: 50 per tenant, 50,000 in all).
    log "hashing the bench password with the server's parameters (serein users add --password-stdin)"
    printf '%s\n' "$BENCH_PASSWORD" | "$BIN" users add --tenant t1 --email bench-hash@t1.bench.example \
        --role employee --password-stdin > "$OUT/users_add.log" 2>&1
    psql -X -q -v ON_ERROR_STOP=1 "$DB" > "$OUT/seed_login.log" <<'SQL'
UPDATE users u SET password_hash = h.password_hash
FROM (SELECT password_hash FROM users WHERE email = 'bench-hash@t1.bench.example') h,
     generate_series(1, 1000) AS n, generate_series(100, 149) AS j
WHERE u.email = 'u' || ((n - 1) * 1000 + j) || '@t' || n || '.bench.example'
  AND u.password_hash IS DISTINCT FROM h.password_hash;
SQL
    psql -XAtc "select count(*) || ' login users; Argon2id parameters: ' || min(split_part(password_hash, '\$', 2) || ' ' || split_part(password_hash, '\$', 3) || ' ' || split_part(password_hash, '\$', 4)) from users where email like 'u%@t%.bench.example' and password_hash is not null" "$DB" | tee "$OUT/login_users.txt" >&2
fi
if [[ $MODE == me || $MODE == members || $MODE == express ]]; then
    JWT_SECRET=$JWT_SECRET python3 bench/mint_tokens.py > "$TOKENS"
    JWT_SECRET=$JWT_SECRET python3 bench/mint_tokens.py --admins > "$ADMIN_TOKENS"
    log "minted $(wc -l < "$TOKENS") + $(wc -l < "$ADMIN_TOKENS") access tokens (HS256, offline) into $OUT"
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
# curl arguments for request number $1 of the mode (1, 2, ...): the capture and the sample.
token_line() { sed -n "${1}p" "$TOKENS"; }
mode_request() {   # $1 = tenant number (profile, members), session number i (me) or user g (login)
    case $MODE in
        members) local l; l=$(sed -n "${1}p" "$ADMIN_TOKENS")
                 curl -fsS -H "Host: ${l%% *}:$PORT" -H "Authorization: Bearer ${l#* }" "http://127.0.0.1:$PORT$MEMBERS_PATH" ;;
        profile) curl -fsS -H "Host: t$1.localhost:$PORT" "http://127.0.0.1:$PORT/api/v1/tenant/profile" ;;
        me|express) local l; l=$(token_line "$1")
                 curl -fsS -H "Host: ${l%% *}:$PORT" -H "Authorization: Bearer ${l#* }" "http://127.0.0.1:$PORT/api/v1/auth/me" ;;
        login)   local n=$(( ($1 - 1) / 1000 + 1 ))
                 curl -fsS -H "Host: t$n.localhost:$PORT" -H 'Content-Type: application/json' \
                     -d "{\"email\":\"u$1@t$n.bench.example\",\"password\":\"$BENCH_PASSWORD\"}" \
                     "http://127.0.0.1:$PORT/api/v1/auth/login" ;;
    esac
}
case $MODE in
    profile) CAPTURE=(1 2 1) ;;
    me|express) CAPTURE=(1 11 1) ;;    # t1 session 1, t2 session 11, t1 session 1 again
    members) CAPTURE=(1 2 1) ;;     # the admins of t1, t2, t1
    login)   CAPTURE=(100 1101) ;;  # u100@t1, u1101@t2
esac

# --- capture what the handler sends (log_statement = all for a few requests) ----------------
# and check that the pgbench scripts still run the same SQL (the handler may have changed).
PGLOG=${PGLOG:-/var/log/postgresql/postgresql-15-main.log}
reset_log_statement() { psql -XAtqc "ALTER DATABASE $DB RESET log_statement" postgres || true; }
if [[ -r $PGLOG ]]; then
    trap 'stop_server; reset_log_statement' EXIT
    psql -XAtqc "ALTER DATABASE $DB SET log_statement = 'all'" postgres
    mark=$(stat -c %s "$PGLOG")
    start_server
    for n in "${CAPTURE[@]}"; do
        mode_request "$n" > /dev/null
    done
    stop_server
    reset_log_statement
    trap stop_server EXIT
    sleep 0.5
    # Keep this database's lines and their continuation lines (multi-line statements).
    tail -c +"$((mark + 1))" "$PGLOG" | awk -v db="@$DB " '
        /^[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9] / { keep = index($0, db) > 0 }
        keep' | sed -E "s/decode\('[0-9a-f]{64}', 'hex'\)/decode('REDACTED', 'hex')/g" > "$OUT/captured_statements.log"
    python3 - "${MODE/express/me}" "$OUT/captured_statements.log" > "$OUT/statement_check.txt" <<'PY' || true
import re, sys
mode, log = sys.argv[1], sys.argv[2]
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
script_lines = lambda f: [l for l in open(f) if l.strip() and not l.startswith(("--", "\\set", "\\startpipeline", "\\endpipeline"))]

if mode == "login":
    # No pgbench counterpart: list what the logins send (round trips and work besides Argon2),
    # from the first transaction on (before it: the server's start-up migrations and self-check).
    first = next((i for i, t in enumerate(texts) if t.startswith("BEGIN;")), 0)
    texts = texts[first:]
    print(f"{len(texts)} statements for the captured logins (after start-up):")
    for t in texts: print("  " + norm(t)[:300])
    print("LISTED")
    sys.exit(0)

# The first message of a transaction sets the context: compare what it SETS (setting → value,
# whether written `SET LOCAL x = 'v'` or `set_config('x', 'v', true)`) and the guard's
# arguments; the exact text is compared for the -M simple script, which must be the server's
# message itself.
def context(t):
    t = t.replace("\\;", ";")
    settings = {}
    for name, val in re.findall(r"SET LOCAL ([\w.]+)(?: =)? '?([^';]*)'?(?=;|$)", t):
        settings[name.strip()] = val.strip()
    for name, val in re.findall(r"set_config\('([\w.]+)', '([^']*)', true\)", t):
        settings[name] = val
    g = re.search(r"app_private\.session_guard\((.*)\)\s*;?\s*$", t)
    return settings, (norm(g.group(1)) if g else None)

def literalise(l):
    # the -M prepared forms rebuild each literal from its integer: back to the literal
    l = re.sub(r"\('([0-9a-f-]+-)' \|\| :(\w+)\)::uuid", r"'\1:\2'", l)
    return re.sub(r"'([0-9a-f-]+-)' \|\| :(\w+)", r"'\1:\2'", l)

ts = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z")
SECRET_SERVER = re.compile(r"decode\('(?:[0-9a-f]{64}|REDACTED)', 'hex'\)")
SECRET_SCRIPT = "(SELECT secret FROM bench_secrets WHERE i = :i)"
t1 = "00000000-0000-4000-8000-100000000001"
if mode == "profile":
    ids = {t1: "TENANT"}
    marker = t1
    scripts = ["bench/profile_tx_compound_simple.sql", "bench/profile_tx.sql", "bench/profile_tx_pipelined.sql"]
    names = {"00000000-0000-4000-8000-:k": "TENANT"}
elif mode == "me":
    # session 1 of t1 (bench/seed_me.sql ids)
    ids = {t1: "TENANT", "00000000-0000-4000-a000-100000000001": "USER", "00000000-0000-4000-b000-100000000001": "SESSION"}
    marker = "00000000-0000-4000-b000-100000000001"
    scripts = ["bench/me_tx_compound_simple.sql", "bench/me_tx.sql", "bench/me_tx_pipelined.sql"]
    names = {"00000000-0000-4000-8000-:k": "TENANT", "00000000-0000-4000-a000-:u": "USER", "00000000-0000-4000-b000-:u": "SESSION"}
else:
    # members: the admin of t1, session 10001
    ids = {t1: "TENANT", "00000000-0000-4000-a000-100000010001": "USER", "00000000-0000-4000-b000-100000010001": "SESSION"}
    marker = "00000000-0000-4000-b000-100000010001"
    scripts = ["bench/members_tx.sql"]
    names = {"00000000-0000-4000-8000-:k": "TENANT", "00000000-0000-4000-a000-:u": "USER", "00000000-0000-4000-b000-:u": "SESSION"}

def placeholders(t, table):
    for k, v in table.items():
        t = t.replace(k, v)
    return ts.sub("NOW", t)

def params(t):
    # Parameters and what stands for them in the pgbench twins, whatever their casts.
    t = re.sub(r"\(CASE WHEN :z = 0 THEN NULL END\)::\w+", "$P", t)
    t = re.sub(r"\('[0-9a-f-]+-' \|\| :\w+\)::uuid", "$P", t)
    t = re.sub(r"'[0-9a-f-]+-:\w+'|'(?:TENANT|USER|SESSION)'|:lim\b", "$P", t)
    return re.sub(r"\$\d+(?:::\w+)?", "$P", t)

tx = []
for i, t in enumerate(texts):   # the context message for t1, the SELECT, COMMIT
    if t.startswith("BEGIN;") and marker in t and i + 2 < len(texts):
        tx = [placeholders(SECRET_SERVER.sub("SECRET", t), ids), texts[i + 1], texts[i + 2]]
        break
print(f"handler sends ({mode}, tenant t1; ids, secret and time as placeholders):")
for t in tx: print("  " + norm(t))
have = len(tx) == 3
ok = have
if have:
    want_ctx = context(tx[0])
    want_select = norm(params(tx[1]))
    want_rest = norm(tx[2])
for f in scripts:
    ls = [l.replace(SECRET_SCRIPT, "SECRET") for l in script_lines(f)]
    simple = "\\;" in ls[0]
    if simple:
        # -M simple: the server's message, byte for byte but for ids, secret and time.
        first = norm(placeholders(ls[0].replace("\\;", ";"), names))
        same_first = have and first == norm(tx[0])
    else:
        # BEGIN, then the context statement (or both pipelined)
        first = norm(placeholders(literalise(ls[1]), names))
        same_first = have and ls[0].strip() == "BEGIN;" and context(first) == want_ctx
        ls = [ls[0] + " " + ls[1]] + ls[2:]
    sel = norm(params(placeholders(literalise(ls[1]), names)))
    same = same_first and sel == want_select and norm(ls[2]) == want_rest and len(ls) == 3
    print(f"{f}: {'same transaction' if same else 'DIFFERS:'}")
    if not same:
        print("  context: " + first)
        if have:
            print("  settings/guard: " + repr(context(first)) + "  vs handler " + repr(want_ctx))
            print("  select: " + sel + "\n  vs     " + want_select)
    ok = ok and same
print("MATCH" if ok else "MISMATCH: update the pgbench scripts to what the handler sends")
sys.exit(0 if ok else 1)
PY
    if grep -q '^MATCH' "$OUT/statement_check.txt"; then
        log "captured statements match the pgbench scripts"
    elif grep -q '^LISTED' "$OUT/statement_check.txt"; then
        log "captured login statements listed in $OUT/statement_check.txt"
    else
        log "WARNING: the handler's SQL differs from the pgbench scripts (see $OUT/statement_check.txt)"
    fi
else
    log "cannot read $PGLOG: statement capture skipped"
fi

# --- server ----------------------------------------------------------------------------------
log "starting server"
start_server
case $MODE in
    profile) mode_request 1 ;;
    me|express) mode_request 1 ;;
    members) mode_request 1 | head -c 600; echo " …" ;;
    login)   mode_request 1100 | sed -E 's/"(access_token|refresh_token)":"[^"]*"/"\1":"…"/g' ;;
esac > "$OUT/sample_response.json"
echo >> "$OUT/sample_response.json"
sleep 2
RSS_IDLE_START=$(rss_kb "$SERVER_PID")
log "server pid $SERVER_PID, idle RSS ${RSS_IDLE_START} kB"

if [[ $MODE == express ]]; then
    if [[ ! -d bench/express/node_modules ]]; then
        log "installing the Express bench (npm ci)"
        (cd bench/express && npm ci --no-audit --no-fund > "$OUT/npm.log" 2>&1)
    fi
    echo "node: $(node --version); $(cd bench/express && npm ls --depth=0 2>/dev/null | tail -n +2 | tr -d '\n')" >> "$OUT/machine.txt"
    for w in 1 2; do
        PORT=$((PORT + w)) WORKERS=$w POOL_MAX=$CONNS node bench/express/server.js > "$OUT/express_w$w.log" 2>&1 &
        EXPRESS_PID[$w]=$!
    done
    trap 'stop_server; for p in "${EXPRESS_PID[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT
    sleep 2
    for w in 1 2; do
        l=$(token_line 1)
        curl -fsS -H "Host: ${l%% *}:$((PORT + w))" -H "Authorization: Bearer ${l#* }" "http://127.0.0.1:$((PORT + w))/api/v1/auth/me" \
            > "$OUT/sample_response_express_w$w.json" || { log "the Express server ($w worker(s)) does not answer"; exit 1; }
        echo >> "$OUT/sample_response_express_w$w.json"
        RSS_IDLE_EXPRESS[$w]=$(tree_rss_kb "${EXPRESS_PID[$w]}")
    done
fi

# --- warm-up (not recorded) ------------------------------------------------------------------
log "warming up (${WARMUP}s each)"
case $MODE in
profile)
    wrk -c"$CONNS" -t1 -d"${WARMUP}s" -s bench/random_tenant.lua "http://127.0.0.1:$PORT" > "$OUT/warmup_api.txt" 2>&1
    pgbench -c"$CONNS" -j1 -T"$WARMUP" -n -M prepared -f bench/profile_tx.sql "$DB" > "$OUT/warmup_pgbench.txt" 2>&1
    pgbench -c"$CONNS" -j1 -T"$WARMUP" -n -M prepared -f bench/profile_tx_pipelined.sql "$DB" >> "$OUT/warmup_pgbench.txt" 2>&1
    pgbench -c"$CONNS" -j1 -T"$WARMUP" -n -M simple -f bench/profile_tx_compound_simple.sql "$DB" >> "$OUT/warmup_pgbench.txt" 2>&1
    ;;
me)
    TOKENS=$TOKENS PORT=$PORT wrk -c"$CONNS" -t1 -d"${WARMUP}s" -s bench/me.lua "http://127.0.0.1:$PORT" > "$OUT/warmup_api.txt" 2>&1
    if [[ -z ${SKIP_PROFILE:-} ]]; then
        wrk -c"$CONNS" -t1 -d"${WARMUP}s" -s bench/random_tenant.lua "http://127.0.0.1:$PORT" >> "$OUT/warmup_api.txt" 2>&1
    fi
    for f in me_tx profile_tx me_tx_pipelined; do
        pgbench -c"$CONNS" -j1 -T"$WARMUP" -n -M prepared -f "bench/$f.sql" "$DB" >> "$OUT/warmup_pgbench.txt" 2>&1
    done
    pgbench -c"$CONNS" -j1 -T"$WARMUP" -n -M simple -f bench/me_tx_compound_simple.sql "$DB" >> "$OUT/warmup_pgbench.txt" 2>&1
    ;;
express)
    for w in 0 1 2; do
        TOKENS=$TOKENS PORT=$((PORT + w)) wrk -c"$CONNS" -t1 -d"${WARMUP}s" -s bench/me.lua "http://127.0.0.1:$((PORT + w))" >> "$OUT/warmup_api.txt" 2>&1
    done
    ;;
members)
    TOKENS=$ADMIN_TOKENS URL_PATH=$MEMBERS_PATH PORT=$PORT wrk -c"$CONNS" -t1 -d"${WARMUP}s" -s bench/me.lua "http://127.0.0.1:$PORT" > "$OUT/warmup_api.txt" 2>&1
    pgbench -c"$CONNS" -j1 -T"$WARMUP" -n -M prepared -f bench/members_tx.sql "$DB" > "$OUT/warmup_pgbench.txt" 2>&1
    ;;
login)
    PASSWORD=$BENCH_PASSWORD PORT=$PORT wrk -c2 -t1 -d"${WARMUP}s" -s bench/login.lua "http://127.0.0.1:$PORT" > "$OUT/warmup_api.txt" 2>&1
    ;;
esac
if grep -q "Non-2xx" "$OUT/warmup_api.txt"; then log "WARNING: non-2xx responses during the warm-up (see warmup_api.txt)"; fi

# --- interleaved rounds ----------------------------------------------------------------------
for r in $(seq 1 "$ROUNDS"); do
    case $MODE in
        profile) run_api "$r"; run_b4 "$r"; run_b3p "$r"; run_b3s "$r" ;;
        me)      run_api_me "$r"; run_m4 "$r"; run_m3p "$r"; run_m3s "$r"; run_b4 "$r"
                 if [[ -z ${SKIP_PROFILE:-} ]]; then run_api "$r"; fi ;;
        members) run_api_members "$r"; run_l4 "$r" ;;
        express) run_api_me "$r"; run_express "$r" 1; run_express "$r" 2 ;;
        login)   for c in $LOGIN_CONNS; do run_login "$r" "$c"; done ;;
    esac
done
main_kind=api; case $MODE in me|express) main_kind=api_me ;; members) main_kind=api_members ;; login) main_kind=login ;; esac
RSS_LOAD_MAX=$(cat "$OUT"/rss_load."$main_kind"*.r* | sort -n | tail -1)
RSS_HWM=$(hwm_kb "$SERVER_PID")

# --- latency at ~80 % of the median max rate -------------------------------------------------
RATE=0
if [[ $MODE != login ]]; then
    main=$main_kind
    API_MEDIAN=$(awk -v k="$main" '$1==k{print $3}' "$RESULTS" | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')
    RATE=$(awk -v m="$API_MEDIAN" 'BEGIN{printf "%d", m*0.8}')
    # One Host (t500) for the whole run, as oha and hey send fixed headers (the tenant cache then
    # always hits, which is what ~all requests see in the throughput runs too); MODE=me uses the
    # token of t500's first session.
    if [[ $MODE == me || $MODE == express ]]; then
        tl=$(token_line 4991); LAT_HOST=${tl%% *}:$PORT; LAT_AUTH=("Authorization: Bearer ${tl#* }")
        LAT_URL="http://127.0.0.1:$PORT/api/v1/auth/me"
    elif [[ $MODE == members ]]; then
        tl=$(sed -n 500p "$ADMIN_TOKENS"); LAT_HOST=${tl%% *}:$PORT; LAT_AUTH=("Authorization: Bearer ${tl#* }")
        LAT_URL="http://127.0.0.1:$PORT$MEMBERS_PATH"
    else
        LAT_HOST=t500.localhost:$PORT; LAT_AUTH=(); LAT_URL="http://127.0.0.1:$PORT/api/v1/tenant/profile"
    fi
    if [[ -z "${SKIP_OHA:-}" && -x "$OHA" ]]; then
        lw=$(wait_idle)
        log "latency: oha -q $RATE (80 % of $API_MEDIAN req/s), loadavg ${lw% *}"
        hdr=(-H "Host: $LAT_HOST"); [[ ${#LAT_AUTH[@]} -gt 0 ]] && hdr+=(-H "${LAT_AUTH[0]}")
        "$OHA" -z "${DURATION}s" -c "$CONNS" -q "$RATE" --no-tui --latency-correction \
            "${hdr[@]}" "$LAT_URL" > "$OUT/oha.txt" 2>&1 || log "oha failed (see oha.txt)"
        RSS_HWM=$(hwm_kb "$SERVER_PID")
    elif [[ -z "${SKIP_OHA:-}" && -n "$HEY" ]]; then
        # hey: -q is per worker, so the total rate is c × q.
        lw=$(wait_idle)
        q=$(( RATE / CONNS ))
        log "latency: hey -c $CONNS -q $q (≈ $RATE req/s, 80 % of $API_MEDIAN), loadavg ${lw% *}"
        hdr=(); [[ ${#LAT_AUTH[@]} -gt 0 ]] && hdr+=(-H "${LAT_AUTH[0]}")
        "$HEY" -z "${DURATION}s" -c "$CONNS" -q "$q" -host "$LAT_HOST" "${hdr[@]}" "$LAT_URL" \
            > "$OUT/hey.txt" 2>&1 || log "hey failed (see hey.txt)"
        RSS_HWM=$(hwm_kb "$SERVER_PID")
    else
        log "neither oha nor hey available: latency run skipped"
    fi
fi
sleep 5
RSS_IDLE_END=$(rss_kb "$SERVER_PID")
{   # Where the memory is (threads: tokio workers + blocking pool; anonymous mappings ≥ 1 MiB).
    echo "threads: $(ls "/proc/$SERVER_PID/task" | wc -l)"
    awk '/^[0-9a-f]+-[0-9a-f]+ /{split($1, a, "-"); name = $6} /^Rss:/{if ($2 >= 1024) printf "%8d kB %s\n", $2, (name == "" ? "[anon]" : name)}' \
        "/proc/$SERVER_PID/smaps" | sort -rn | head -40
} > "$OUT/server_memory.txt" 2>/dev/null || true
stop_server

# --- summary ---------------------------------------------------------------------------------
python3 - "$RESULTS" "$OUT" "$RSS_IDLE_START" "$RSS_LOAD_MAX" "$RSS_HWM" "$RSS_IDLE_END" "$RATE" "$MODE" > "$OUT/summary.md" <<'PY'
import sys, statistics, re, os
res, out, idle0, load, hwm, idle1, rate, mode = sys.argv[1:9]
rows = [l.rstrip("\n").split("\t") for l in open(res) if l.strip()]
label = {
    "api": "API (wrk, req/s)",
    "pgbench_4stmt": "pgbench -M prepared, 4 statements / 4 round trips (tps)",
    "pgbench_3rt_pipeline": "pgbench -M prepared, BEGIN+set_config pipelined / 3 round trips (tps)",
    "pgbench_3rt_simple": "pgbench -M simple, `BEGIN \\; SELECT set_config` / 3 round trips (tps)",
    "api_me": "API GET /auth/me (wrk, req/s)",
    "pgbench_me_4stmt": "M4: pgbench -M prepared, me_tx.sql, 4 statements / 4 round trips (tps)",
    "pgbench_me_3rt_pipeline": "M3p: pgbench -M prepared, me_tx_pipelined.sql / 3 round trips (tps)",
    "pgbench_me_3rt_simple": "M3s: pgbench -M simple, me_tx_compound_simple.sql / 3 round trips (tps)",
    "api_members": "API GET /members?limit=20, tenant admin (wrk, req/s)",
    "api_express_w1": "Express 4 + pg + jsonwebtoken, GET /auth/me, 1 process (wrk, req/s)",
    "api_express_w2": "Express 4 + pg + jsonwebtoken, GET /auth/me, cluster of 2 (wrk, req/s)",
    "pgbench_members_4stmt": "L4: pgbench -M prepared, members_tx.sql, 4 statements / 4 round trips (tps)",
}
if mode == "me":
    label["pgbench_4stmt"] = "B4: foundation profile_tx.sql, pgbench -M prepared (tps)"
    label["api"] = "API GET /tenant/profile, anonymous (wrk, req/s), same server"
    kinds = ["api_me", "pgbench_me_4stmt", "pgbench_me_3rt_pipeline", "pgbench_me_3rt_simple", "pgbench_4stmt", "api"]
elif mode == "members":
    kinds = ["api_members", "pgbench_members_4stmt"]
elif mode == "express":
    kinds = ["api_me", "api_express_w1", "api_express_w2"]
elif mode == "login":
    kinds = sorted({r[0] for r in rows}, key=lambda k: int(k.split("_c")[1]))
    for k in kinds:
        label[k] = f"login, wrk -c{k.split('_c')[1]} (logins/s)"
else:
    kinds = ["api", "pgbench_4stmt", "pgbench_3rt_pipeline", "pgbench_3rt_simple"]
by = {k: [r for r in rows if r[0] == k] for k in kinds}

def ms(v, unit):
    return float(v) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]
def wrk_pct(kind, rnd, p):
    t = open(os.path.join(out, f"{kind}.r{rnd}.txt")).read()
    m = re.search(rf"^\s+{p}%\s+([0-9.]+)(us|ms|s)\s*$", t, re.M)
    return ms(m.group(1), m.group(2)) if m else float("nan")

def done(kind, rnd):
    """Requests (wrk) or transactions (pgbench) actually completed in a measurement."""
    t = open(os.path.join(out, f"{kind}.r{rnd}.txt")).read()
    m = re.search(r"(\d+) requests in", t) or re.search(r"actually processed: (\d+)", t)
    return int(m.group(1)) if m else 0

med = {}
print("| run | rounds | median | min | max | client CPU µs/tx | server CPU µs/tx | PostgreSQL CPU µs/tx | machine busy µs/tx | DB xacts per tx | steal s | loadavg before |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for k in kinds:
    rs = by[k]
    if not rs:
        continue
    v = [float(r[2]) for r in rs]
    med[k] = statistics.median(v)
    n = [float(r[2]) * float(r[6]) for r in rs]  # approx transactions
    cl = statistics.median([float(r[3]) / x * 1e6 for r, x in zip(rs, n)])
    sv = statistics.median([float(r[4]) / x * 1e6 for r, x in zip(rs, n)]) if k.startswith(("api", "login")) else 0.0
    bz = statistics.median([float(r[5]) / x * 1e6 for r, x in zip(rs, n)])
    las = ", ".join(r[7] + (f" (waited {r[8]}s)" if r[8] not in ("0",) else "") for r in rs)
    stl = " / ".join(r[9] if len(r) > 9 else "?" for r in rs)
    dx = [float(r[10]) / done(k, r[1]) for r in rs if len(r) > 10 and done(k, r[1])]
    dxs = f"{statistics.median(dx):.2f}" if dx else "?"
    pc = [float(r[11]) / x * 1e6 for r, x in zip(rs, n) if len(r) > 11]
    pcs = f"{statistics.median(pc):.0f}" if pc else "?"
    print(f"| {label[k]} | {' / '.join(f'{x:.0f}' for x in v)} | **{med[k]:.0f}** | {min(v):.0f} | {max(v):.0f} | {cl:.0f} | {sv:.0f} | {pcs} | {bz:.0f} | {dxs} | {stl} | {las} |")
print()
main = {"profile": "api", "me": "api_me", "members": "api_members", "express": "api_me"}.get(mode)
if main in med:
    a = [float(r[2]) for r in by[main]]
    for k in kinds[1:]:
        if k in med:
            b = [float(r[2]) for r in by[k]]
            # per-round ratios (API round i vs pgbench round i) give the band
            pr = [x / y for x, y in zip(a, b)]
            print(f"- ratio API ÷ {label[k]}: **{med[main] / med[k]:.3f}** (median ÷ median; per-round {', '.join(f'{x:.3f}' for x in pr)})")
    if mode == "me" and "api" in med and "pgbench_4stmt" in med:
        a = [float(r[2]) for r in by["api"]]
        b = [float(r[2]) for r in by["pgbench_4stmt"]]
        pr = [x / y for x, y in zip(a, b)]
        print(f"- (foundation's figure, this run) API /tenant/profile ÷ B4: **{med['api'] / med['pgbench_4stmt']:.3f}** (per-round {', '.join(f'{x:.3f}' for x in pr)})")
    print()
if mode == "login":
    print("| connections | logins/s median (min–max) | p50 ms median (min–max) | p99 ms median (min–max) | server CPU ms/login | machine busy ms/login | non-2xx |")
    print("|---|---|---|---|---|---|---|")
    for k in kinds:
        rs = by[k]
        v = [float(r[2]) for r in rs]
        n = [float(r[2]) * float(r[6]) for r in rs]
        p50 = [wrk_pct(k, r[1], 50) for r in rs]
        p99 = [wrk_pct(k, r[1], 99) for r in rs]
        sv = statistics.median([float(r[4]) / x * 1e3 for r, x in zip(rs, n)])
        bz = statistics.median([float(r[5]) / x * 1e3 for r, x in zip(rs, n)])
        bad = sum(int(m.group(1)) for r in rs for m in [re.search(r"Non-2xx or 3xx responses: (\d+)", open(os.path.join(out, f"{k}.r{r[1]}.txt")).read())] if m)
        f = lambda xs, d=1: f"{statistics.median(xs):.{d}f} ({min(xs):.{d}f}–{max(xs):.{d}f})"
        print(f"| {k.split('_c')[1]} | {f(v)} | {f(p50, 2)} | {f(p99, 2)} | {sv:.2f} | {bz:.2f} | {bad} |")
    print()
elif main in by and by[main]:
    p50 = [wrk_pct(main, r[1], 50) for r in by[main]]
    p99 = [wrk_pct(main, r[1], 99) for r in by[main]]
    print(f"- wrk latency at max rate ({main}, closed loop): p50 {statistics.median(p50):.2f} ms, p99 {statistics.median(p99):.2f} ms (medians of the rounds)")
print(f"- server RSS: idle after start {int(idle0)/1024:.1f} MiB; under load (max of mid-run samples) {int(load)/1024:.1f} MiB; "
      f"peak (VmHWM) {int(hwm)/1024:.1f} MiB; idle after the runs {int(idle1)/1024:.1f} MiB")
oha = os.path.join(out, "oha.txt")
hey = os.path.join(out, "hey.txt")
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
elif os.path.exists(hey):
    t = open(hey).read()
    def grab(p):
        m = re.search(p, t)
        return m.group(1) if m else "?"
    p50 = grab(r"50%+ in ([0-9.]+) secs")
    p99 = grab(r"99%+ in ([0-9.]+) secs")
    rps = grab(r"Requests/sec:\s+([0-9.]+)")
    codes = " ".join(re.findall(r"\[(\d+)\]\s+(\d+) responses", t) and [f"{c}×{n}" for c, n in re.findall(r"\[(\d+)\]\s+(\d+) responses", t)])
    f = lambda s: f"{float(s) * 1e3:.2f} ms" if s != "?" else s
    print(f"- latency at {rate} req/s (hey -q, Host t500): p50 {f(p50)}, p99 {f(p99)}, achieved {rps} req/s, status codes {codes}")
PY
if [[ $MODE == express ]]; then
    for w in 1 2; do
        load=$(cat "$OUT"/rss_load.api_express_w$w.r* 2>/dev/null | sort -n | tail -1)
        echo "- Express, $w worker(s): RSS idle after start $((${RSS_IDLE_EXPRESS[$w]:-0} / 1024)) MiB, under load (max of mid-run samples) $((${load:-0} / 1024)) MiB (primary + workers)" >> "$OUT/summary.md"
    done
fi
cat "$OUT/summary.md"
log "raw outputs in $OUT"
