#!/usr/bin/env bash
# PostgreSQL CPU per transaction of the request path's pieces (issue 10), one client, measured
# on the backend itself (/proc/<pid>/stat of the pgbench connection's backend, 10 ms ticks, so
# N transactions give ±10 ms / N), and pgbench's own CPU per transaction:
#   bench/pg_micro.sh [N]            (default N=20000; bench database seeded by bench/run.sh MODE=me)
# Scripts (session i random as in bench/me_tx.sql; the guard's secret from bench_secrets):
#   m4          bench/me_tx.sql, -M prepared: the twin of GET /auth/me (4 round trips)
#   m4_ping     the same + one bare Sync (\startpipeline \endpipeline): what sqlx's pool added
#               per request with its ping on release
#   ctx_select  -M simple: BEGIN \; SELECT set_config(x6), session_guard(…) ; COMMIT
#               (the context statement of main@049b179)
#   ctx_set     -M simple: BEGIN \; SET LOCAL x6 \; SELECT session_guard(…) ; COMMIT (now)
#   ctx_select_noguard / ctx_set_noguard: the same without the guard (and without its secret)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-20000}
DB=${DB:-serein_bench}
export PGHOST=${PGHOST:-127.0.0.1} PGUSER=${PGUSER:-postgres}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
head='\set i random(1, 10000)
\set k 100000000000 + (:i - 1) / 10 + 1
\set u 100000000000 + :i'
set_cfg="set_config('role', 'serein_app', true), set_config('app.tenant_id', '00000000-0000-4000-8000-:k', true), set_config('app.user_id', '00000000-0000-4000-a000-:u', true), set_config('app.roles', 'employee', true), set_config('statement_timeout', '15000', true), set_config('idle_in_transaction_session_timeout', '60000', true)"
set_local="SET LOCAL role 'serein_app' \\; SET LOCAL app.tenant_id = '00000000-0000-4000-8000-:k' \\; SET LOCAL app.user_id = '00000000-0000-4000-a000-:u' \\; SET LOCAL app.roles = 'employee' \\; SET LOCAL statement_timeout = 15000 \\; SET LOCAL idle_in_transaction_session_timeout = 60000"
guard="app_private.session_guard('00000000-0000-4000-8000-:k', '00000000-0000-4000-a000-:u', '00000000-0000-4000-b000-:u', (SELECT secret FROM bench_secrets WHERE i = :i), '{employee}', '2026-11-21T16:00:00.123456789Z')"
cp bench/me_tx.sql "$T/m4.sql"
{ cat bench/me_tx.sql; printf '\\startpipeline\n\\endpipeline\n'; } > "$T/m4_ping.sql"
printf '%s\nBEGIN \\; SELECT %s, %s;\nCOMMIT;\n' "$head" "$set_cfg" "$guard" > "$T/ctx_select.sql"
printf '%s\nBEGIN \\; %s \\; SELECT %s;\nCOMMIT;\n' "$head" "$set_local" "$guard" > "$T/ctx_set.sql"
printf '%s\nBEGIN \\; SELECT %s;\nCOMMIT;\n' "$head" "$set_cfg" > "$T/ctx_select_noguard.sql"
printf '%s\nBEGIN \\; %s;\nCOMMIT;\n' "$head" "$set_local" > "$T/ctx_set_noguard.sql"

run() {   # $1 = script name, $2 = protocol
    local out=$T/$1.out pb pid first last v
    pgbench -n -c1 -j1 -M "$2" -t "$N" -f "$T/$1.sql" "$DB" > "$out" 2>&1 &
    pb=$!
    pid=
    for _ in $(seq 1 100); do
        pid=$(psql -XAtc "select pid from pg_stat_activity where datname = '$DB' and application_name = 'pgbench' limit 1" postgres)
        [[ -n $pid ]] && break
        sleep 0.05
    done
    first=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    last=$first
    while kill -0 "$pb" 2>/dev/null; do
        v=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || true)
        [[ -n $v ]] && last=$v
        sleep 0.05
    done
    wait "$pb" || { cat "$out" >&2; return 1; }
    awk -v n="$N" -v t="$((last - first))" -v hz="$(getconf CLK_TCK)" -v name="$1" \
        '/^tps/{tps=$3} END{printf "%-20s backend %6.1f us/tx   tps(1 client) %8.1f\n", name, t / hz / n * 1e6, tps}' "$out"
}
run m4 prepared
run m4_ping prepared
run ctx_select simple
run ctx_set simple
run ctx_select_noguard simple
run ctx_set_noguard simple
