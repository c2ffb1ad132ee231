#!/usr/bin/env bash
# Lists at scale (issue 10, item 8): every list page and search of members, invitations and
# the practitioner directory, in a company of 1,000 rows and one of 100,000.
#
# HOW: through psql, NOT the HTTP server. Each request is the exact SQL of the handler (copied
# from src/members/repo.rs, src/members/invitations.rs, src/practitioners/repo.rs), prepared
# once per connection as sqlx prepares it, and run 15 times, each in its own transaction that
# starts with the context statement of db/tenancy.rs (role serein_app, app.tenant_id,
# app.user_id, app.roles of the company's tenant admin), so row-level security applies exactly
# as in a request. Statements are prepared once and EXECUTEd 16 times on one connection, as
# sqlx does (so PostgreSQL may switch to a generic plan after five runs, as it does in the
# server). Printed: the median of the 15 client-side times (psql \timing, ms) of the
# list statement alone; the 1k/100k ratio is what item 8 bounds (target ≤ 3).
#
# Usage:  bench/lists_probe.sh            # creates + seeds serein_lists_bench if missing
#         SEED=1 bench/lists_probe.sh     # re-create and re-seed
#         EXPLAIN=1 bench/lists_probe.sh  # also print EXPLAIN (ANALYZE, BUFFERS) of each shape
#         SQL=before bench/lists_probe.sh # the member statements as they were before item 8
set -euo pipefail
cd "$(dirname "$0")/.."
DB=${DB:-serein_lists_bench}
PSQL=(psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -U postgres)
RUNS=${RUNS:-15}

if [[ "${SEED:-}" == 1 ]] || ! "${PSQL[@]}" -d "$DB" -c 'select 1' >/dev/null 2>&1; then
    dropdb --if-exists -h 127.0.0.1 -U postgres "$DB"
    createdb -h 127.0.0.1 -U postgres "$DB"
    "${PSQL[@]}" -d "$DB" -c "create table _sqlx_migrations(version bigint primary key, description text not null, installed_on timestamptz not null default now(), success boolean not null, checksum bytea not null, execution_time bigint not null)"
    for f in migrations/*.sql; do "${PSQL[@]}" -d "$DB" -f "$f" >/dev/null; done
    "${PSQL[@]}" -d "$DB" -f bench/lists_seed.sql
fi

q() { "${PSQL[@]}" -d "$DB" -Atc "$1"; }

# ctx SLUG ROLE: the context statement of a request by that company's first member of ROLE.
ctx() {
    local t u
    t=$(q "select id from tenants where slug = '$1'")
    u=$(q "select user_id from memberships where tenant_id = '$t' and '$2' = any (roles) order by id limit 1")
    # The session guard's proof for this person in this transaction (computed as the superuser
    # before the role switch, as the guard would leave it): the definers answer only a proven
    # person, so without it every definer-backed shape would time an empty answer.
    echo "SELECT set_config('app.tenant_id','$t',true), set_config('app.user_id','$u',true), set_config('app.roles','$2',true), set_config('app.session_proof', app_private.session_proof_mac('$t','$u'), true), set_config('role','serein_app',true) \\g /dev/null"
}

NIL=00000000-0000-0000-0000-000000000000
ROLES='{tenant_admin,hr,employee,practitioner}'
STATUSES='{active,disabled}'

if [[ "${SQL:-}" == before ]]; then
    PREP_MEMBERS="PREPARE members(uuid, uuid, text, text, text, bigint) AS
      SELECT m.id, m.user_id, u.email, u.display_name, m.roles, m.status, m.ended_at, m.department, m.created_at
      FROM memberships m JOIN users u ON u.id = m.user_id
      WHERE m.tenant_id = \$1 AND (\$2::uuid IS NULL OR m.id > \$2)
        AND (\$3::text IS NULL OR \$3 = ANY (m.roles))
        AND CASE \$4::text WHEN 'active' THEN m.status = 'active'
                WHEN 'disabled' THEN m.status = 'disabled' AND m.ended_at IS NULL
                WHEN 'ended' THEN m.ended_at IS NOT NULL ELSE m.ended_at IS NULL END
        AND (\$5::text IS NULL OR u.email ILIKE \$5 ESCAPE '\\' OR u.display_name ILIKE \$5 ESCAPE '\\')
      ORDER BY m.id LIMIT \$6;"
    m_page() { echo "members(current_setting('app.tenant_id')::uuid, ${1:-NULL}, NULL, NULL, NULL, 21)"; }
    m_search() { echo "members(current_setting('app.tenant_id')::uuid, NULL, NULL, NULL, '$1', 21)"; }
    m_filter() { echo "members(current_setting('app.tenant_id')::uuid, NULL, 'hr', 'active', NULL, 21)"; }
else
    PREP_MEMBERS="PREPARE members(uuid, uuid, bigint) AS
      SELECT m.id, m.user_id, u.email, u.display_name, m.roles, m.status, m.ended_at, m.department, m.created_at
      FROM memberships m JOIN users u ON u.id = m.user_id
      WHERE m.tenant_id = \$1 AND m.id > \$2 AND m.ended_at IS NULL
      ORDER BY m.id LIMIT \$3;
    PREPARE member_search(uuid, uuid, text[], text[], boolean, text, integer) AS
      SELECT m.id, m.user_id, u.email, u.display_name, m.roles, m.status, m.ended_at, m.department, m.created_at
      FROM memberships m JOIN users u ON u.id = m.user_id
      WHERE m.tenant_id = \$1
        AND m.id = ANY (ARRAY(SELECT app_private.member_search(\$6, \$3, \$4, \$5, \$2, \$7)))
        AND m.roles && \$3 AND m.status = ANY (\$4) AND (m.ended_at IS NOT NULL) = \$5
      ORDER BY m.id LIMIT \$7;"
    m_page() { echo "members(current_setting('app.tenant_id')::uuid, '${1:-$NIL}', 21)"; }
    m_search() { echo "member_search(current_setting('app.tenant_id')::uuid, '$NIL', '$ROLES', '$STATUSES', false, '$1', 21)"; }
    m_filter() { echo "member_search(current_setting('app.tenant_id')::uuid, '$NIL', '{hr}', '{active}', false, NULL, 21)"; }
fi

PREP_OTHERS="PREPARE invitations(uuid, uuid, bigint) AS
  SELECT id, email, roles, department, first_name, last_name, created_at, updated_at, expires_at
  FROM invitations
  WHERE tenant_id = \$1 AND accepted_at IS NULL AND revoked_at IS NULL AND id > \$2
  ORDER BY id LIMIT \$3;
PREPARE directory(uuid, text[], text, text, uuid, integer) AS
  SELECT d.id, d.display_name, p.specialties, p.languages, p.bio, p.verified_at IS NOT NULL,
         p.licence_country, p.photo_file_id, NULL::real
  FROM app_private.practitioner_directory(\$2, \$3, \$4, \$5, \$6) d
  JOIN LATERAL (SELECT 1 FROM memberships m
                WHERE m.user_id = d.id AND m.tenant_id = \$1 AND m.status = 'active'
                  AND 'practitioner' = ANY (m.roles) LIMIT 1) m ON true
  JOIN practitioner_profiles p ON p.user_id = d.id
  ORDER BY d.display_name, d.id;
PREPARE directory_search(uuid, text, text[], text, integer, text, uuid, integer) AS
  SELECT d.id, d.display_name, p.specialties, p.languages, p.bio, p.verified_at IS NOT NULL,
         p.licence_country, p.photo_file_id, d.tier
  FROM app_private.practitioner_search(\$2, \$3, \$4, \$5, \$6, \$7, \$8) d
  JOIN LATERAL (SELECT 1 FROM memberships m
                WHERE m.user_id = d.id AND m.tenant_id = \$1 AND m.status = 'active'
                  AND 'practitioner' = ANY (m.roles) LIMIT 1) m ON true
  JOIN practitioner_profiles p ON p.user_id = d.id
  ORDER BY d.tier, d.display_name, d.id;"

# run SLUG ROLE EXECUTE-ARGS: median ms of RUNS executions (after one warm-up).
run() {
    local c prep times
    c=$(ctx "$1" "$2")
    prep="$PREP_MEMBERS
$PREP_OTHERS"
    times=$({
        echo "$prep"
        echo '\timing on'
        for _ in $(seq 0 "$RUNS"); do
            echo "BEGIN;"
            echo '\timing off'
            echo "$c"
            echo '\timing on'
            echo "EXECUTE $3 \\g /dev/null"
            echo "COMMIT;"
        done
    } | "${PSQL[@]}" -d "$DB" 2>&1 | grep -o 'Time: [0-9.]*' | awk '{print $2}' | grep -v '^$' |
        awk 'NR % 3 == 2')   # per round: BEGIN, EXECUTE, COMMIT are timed; keep the EXECUTE
    echo "$times" | tail -n "$RUNS" | sort -n | awk '{a[NR]=$1} END {printf "%.2f", a[int((NR+1)/2)]}'
    if [[ "${EXPLAIN:-}" == 1 ]]; then
        { echo "$prep"; echo "BEGIN;"; echo "$c"; echo "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) EXECUTE $3;"; echo "ROLLBACK;"; } |
            "${PSQL[@]}" -d "$DB" >&2
    fi
}

# The id 25 rows before the end of a company's list: a page "near the end".
near_end() {
    q "select $2 from $3 where tenant_id = (select id from tenants where slug = '$1') $4 order by $2 desc offset 25 limit 1"
}

printf '%-44s %10s %10s %7s\n' shape "1k (ms)" "100k (ms)" ratio
row() {
    local name=$1 a=$2 b=$3
    printf '%-44s %10s %10s %7s\n' "$name" "$a" "$b" "$(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.2f", b / a}')"
}

for shape in first near_end filter_hr search_common search_rare search_short search_short_common; do
    declare -A t=()
    for s in s1k s100k; do
        case $shape in
            first) args=$(m_page) ;;
            near_end) args=$(m_page "$(near_end "$s" id memberships "and ended_at is null")") ;;
            filter_hr) args=$(m_filter) ;;
            search_common) args=$(m_search '%nadia%') ;;
            search_rare) args=$(m_search '%nadia.martin.1%') ;;
            search_short) args=$(m_search '%zz%') ;;
            search_short_common) args=$(m_search '%na%') ;;
        esac
        if [[ "${SQL:-}" == before && $shape == near_end ]]; then
            args="members(current_setting('app.tenant_id')::uuid, '$(near_end "$s" id memberships "and ended_at is null")', NULL, NULL, NULL, 21)"
        fi
        t[$s]=$(run "$s" tenant_admin "$args")
    done
    row "GET /members $shape" "${t[s1k]}" "${t[s100k]}"
done

for shape in first near_end; do
    declare -A t=()
    for s in s1k s100k; do
        case $shape in
            first) after=$NIL ;;
            near_end) after=$(near_end "$s" id invitations "and accepted_at is null and revoked_at is null") ;;
        esac
        t[$s]=$(run "$s" tenant_admin "invitations(current_setting('app.tenant_id')::uuid, '$after', 21)")
    done
    row "GET /members/invitations $shape" "${t[s1k]}" "${t[s100k]}"
done

for shape in first near_end search search_name search_none; do
    declare -A t=()
    for s in p1k p100k; do
        case $shape in
            first) args="directory(current_setting('app.tenant_id')::uuid, NULL, NULL, '', '$NIL', 21)" ;;
            near_end)
                last=$(q "select u.display_name || '|' || u.id from memberships m join users u on u.id = m.user_id where m.tenant_id = (select id from tenants where slug = '$s') and 'practitioner' = any (m.roles) order by u.display_name desc, u.id desc offset 25 limit 1")
                args="directory(current_setting('app.tenant_id')::uuid, NULL, NULL, '${last%%|*}', '${last##*|}', 21)" ;;
            search) args="directory_search(current_setting('app.tenant_id')::uuid, 'burnout', NULL, NULL, 0, '', '$NIL', 21)" ;;
            search_name) args="directory_search(current_setting('app.tenant_id')::uuid, 'martin', NULL, NULL, 0, '', '$NIL', 21)" ;;
            search_none) args="directory_search(current_setting('app.tenant_id')::uuid, 'astrology', NULL, NULL, 0, '', '$NIL', 21)" ;;
        esac
        t[$s]=$(run "$s" tenant_admin "$args")
    done
    row "GET /practitioners $shape" "${t[p1k]}" "${t[p100k]}"
done
