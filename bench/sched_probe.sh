#!/usr/bin/env bash
# Per-call cost of the SQL behind GET /slots and POST /consultations, inside one transaction
# with the request context of employee 1 (t1) proven by app_private.session_guard, as the
# server sets it (bench/scheduling.sh PROFILE=1 runs it; or by hand after a run, the database
# still seeded):
#   SEREIN_MASTER_KEY=<the run's key> bench/sched_probe.sh [serein_bench_sched]
# Prints EXPLAIN ANALYZE timings: 1,000 calls of the proof helpers and of the visibility
# function the availability policies call per row, and the statements of the handlers.
set -euo pipefail
DB=${1:-serein_bench_sched}
KEY=${SEREIN_MASTER_KEY:-5e4e1bbe0c0ffee05c4ed0000000000000000000000000000000000000000b01}
SEC=$(python3 - "$KEY" <<'PY'
import hashlib, hmac, sys, uuid
prk = hmac.new(b"serein session secret v1", bytes.fromhex(sys.argv[1]), hashlib.sha256).digest()
print(hmac.new(prk, uuid.UUID("00000000-0000-4000-b000-000000000001").bytes + b"\x01", hashlib.sha256).hexdigest())
PY
)
T=00000000-0000-4000-8000-000000000001
U=00000000-0000-4000-a000-000000000001
S=00000000-0000-4000-b000-000000000001
P0=00000000-0000-4000-c000-000000000000
FROM=${ANCHOR:-$(date -u -d 'tomorrow 00:00' +%Y-%m-%dT%H:%M:%SZ)}
psql -X -q -v ON_ERROR_STOP=1 "$DB" <<SQL 2>&1 | grep -E '^(--|[A-Za-z].*:)|Execution Time|Planning Time|rows=[0-9]+ loops' | sed -E 's/\(cost=[^)]*\) //'
BEGIN;
SET LOCAL role 'serein_app'; SET LOCAL app.tenant_id = '$T'; SET LOCAL app.user_id = '$U'; SET LOCAL app.roles = 'employee';
SELECT app_private.session_guard('$T', '$U', '$S', decode('$SEC', 'hex'), '{employee}', now()) \gset
\echo '-- warm-up (first calls plan and cache)'
SELECT count(*) FROM availability_rules WHERE practitioner_id = '$P0' \gset
\echo '-- 1,000 x app_private.proven_person()  (LANGUAGE sql SECURITY DEFINER SET search_path: planned per call)'
EXPLAIN (ANALYZE, COSTS OFF) SELECT app_private.proven_person() FROM generate_series(1, 1000);
\echo '-- 1,000 x app_private.availability_visible(p0)  (what the availability policies run for EACH row)'
EXPLAIN (ANALYZE, COSTS OFF) SELECT app_private.availability_visible('$P0') FROM generate_series(1, 1000);
\echo '-- 1,000 x (SELECT app_private.proven_person())  (an initplan: once per statement)'
EXPLAIN (ANALYZE, COSTS OFF) SELECT (SELECT app_private.proven_person()) FROM generate_series(1, 1000);
\echo '-- rules of p0 (20 rows), as src/availability/repo.rs rules() reads them'
EXPLAIN (ANALYZE, COSTS OFF) SELECT id, weekday, start_time, end_time, lengths, step_minutes, buffer_before,
       buffer_after, min_notice_minutes, horizon_days, kinds, updated_at
FROM availability_rules WHERE practitioner_id = '$P0' ORDER BY weekday, start_time, id;
\echo '-- the same rows read as the table owner (no policy): the cost of the rows themselves'
RESET role;
EXPLAIN (ANALYZE, COSTS OFF) SELECT id, weekday, start_time, end_time, lengths, step_minutes, buffer_before,
       buffer_after, min_notice_minutes, horizon_days, kinds, updated_at
FROM availability_rules WHERE practitioner_id = '$P0' ORDER BY weekday, start_time, id;
SET LOCAL role 'serein_app';
\echo '-- busy time of p0 over 62 days + 6 h (500 bookings, 5 companies)'
EXPLAIN (ANALYZE, COSTS OFF) SELECT * FROM app_private.practitioner_busy('$P0', '$FROM'::timestamptz - interval '3 hours', '$FROM'::timestamptz + interval '62 days 3 hours');
\echo '-- schedule settings of p0 (1 row, policy per row)'
EXPLAIN (ANALYZE, COSTS OFF) SELECT time_zone, auto_confirm FROM practitioner_schedules WHERE user_id = '$P0';
ROLLBACK;
SQL
