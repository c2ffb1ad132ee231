#!/usr/bin/env bash
# Times the CSV member import (POST /api/v1/members/import, release build) for files of 10,000
# and 50,000 new people, and records the server's peak resident memory (VmHWM) during each.
#
#   bench/import.sh                                  # build, fresh database, 3 rounds per size
#   SKIP_BUILD=1 ROUNDS=5 SIZES="10000 50000" bench/import.sh
#
# Each measurement: empty the tenant's invitations and outbox, start a fresh server (so VmHWM
# is this import's peak), read its idle RSS, POST the file with curl (time_total = upload +
# parse + validation + staging + invitations + 1 e-mail per row in the outbox + seat check +
# commit), read VmHWM, stop the server. Sizes are interleaved across rounds.
# The database is DB (default serein_bench_import), dropped and recreated at the start.
# Writes bench/out/<timestamp>-import/{results.tsv,summary.md,…}.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

ROUNDS=${ROUNDS:-3}
SIZES=${SIZES:-10000 50000}
PORT=${PORT:-8091}
PGHOST=${PGHOST:-127.0.0.1}
PGPORT=${PGPORT:-5432}
PGUSER=${PGUSER:-postgres}
DB=${DB:-serein_bench_import}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET/release/serein
export PGHOST PGPORT PGUSER

OUT=${OUT:-$ROOT/bench/out/$(date -u +%Y%m%dT%H%M%SZ)-import}
mkdir -p "$OUT"
log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" | tee -a "$OUT/run.log" >&2; }

if [[ $DB != *bench* ]]; then echo "DB must contain 'bench' (it is dropped)" >&2; exit 2; fi
if curl -s -o /dev/null "http://127.0.0.1:$PORT/health/live"; then
    echo "something already serves 127.0.0.1:$PORT: refusing to measure" >&2; exit 1
fi

if [[ -z ${SKIP_BUILD:-} ]]; then
    log "building (release)"
    CARGO_TARGET_DIR=$TARGET cargo build --release --quiet --bin serein
fi

# --- database and seed ---------------------------------------------------------------------
dropdb --if-exists "$DB"
createdb "$DB"
JWT_SECRET=$(head -c 48 /dev/urandom | base64 | tr -d '/+=\n')
SEREIN_DATA_DIR=$(mktemp -d /tmp/serein-bench-import-XXXXXX)
export JWT_SECRET SEREIN_DATA_DIR
export DATABASE_URL="postgres://${PGUSER}@${PGHOST}:${PGPORT}/${DB}" BIND="127.0.0.1:$PORT" \
    RUST_LOG=warn SEREIN_TENANTS_DIR= MAIL_WORKER=false SEREIN_CREATE_DATABASE=false \
    RATE_LIMIT_PER_IP_PER_SEC=100000 RATE_LIMIT_PER_IP_BURST=100000
"$BIN" migrate > "$OUT/migrate.log" 2>&1

TENANT=00000000-0000-4000-8000-00000000a001
ADMIN=00000000-0000-4000-a000-00000000a001
SESSION=00000000-0000-4000-b000-00000000a001
psql -X -q -v ON_ERROR_STOP=1 "$DB" > "$OUT/seed.log" <<SQL
INSERT INTO tenants (id, slug, name, plan, seats, managed_by)
VALUES ('$TENANT', 'imp', 'Import Bench Inc', 'enterprise', 1000000, 'api');
INSERT INTO users (id, email, display_name, email_verified_at, totp_enabled_at)
VALUES ('$ADMIN', 'admin@imp.bench.example', 'Bench Admin', now(), now());
INSERT INTO memberships (id, tenant_id, user_id, roles)
VALUES (gen_random_uuid(), '$TENANT', '$ADMIN', ARRAY['tenant_admin']);
INSERT INTO sessions (id, tenant_id, user_id, created_at, idle_expires_at, absolute_expires_at)
VALUES ('$SESSION', '$TENANT', '$ADMIN', now(), '2099-01-01Z', '2099-01-01Z');
SQL
# An access token for that session (HS256, claims as src/crypto/tokens.rs issues them).
TOKEN=$(TENANT=$TENANT ADMIN=$ADMIN SESSION=$SESSION python3 - <<'PY'
import base64, hashlib, hmac, json, os, time, uuid
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
now = int(time.time())
head = b64(json.dumps({"typ": "JWT", "alg": "HS256"}, separators=(",", ":")).encode())
body = b64(json.dumps({"iss": "serein", "aud": "imp.localhost", "sub": os.environ["ADMIN"],
    "tid": os.environ["TENANT"], "roles": ["tenant_admin"], "sid": os.environ["SESSION"],
    "typ": "access", "iat": now, "exp": now + 86400, "jti": str(uuid.uuid4())},
    separators=(",", ":")).encode())
sig = b64(hmac.new(os.environ["JWT_SECRET"].encode(), f"{head}.{body}".encode(), hashlib.sha256).digest())
print(f"{head}.{body}.{sig}")
PY
)

for n in $SIZES; do
    awk -v n="$n" 'BEGIN { print "email,first_name,last_name,department,role";
        for (i = 0; i < n; i++)
            printf "person%06d@imp.bench.example,First%d,Last%d,Department %d,%s\n",
                i, i, i, i % 40, (i % 100 == 0 ? "hr" : "employee") }' > "$OUT/members-$n.csv"
done

# --- measurements ----------------------------------------------------------------------------
SERVER_PID=
stop_server() {
    if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
    fi
    SERVER_PID=
}
trap 'stop_server; rm -rf "$SEREIN_DATA_DIR"' EXIT
kb() { awk -v k="$1" '$1 == k":" {print $2}' "/proc/$SERVER_PID/status"; }

printf 'rows\tround\thttp\tseconds\tbytes\tidle_rss_kb\tpeak_rss_kb\tinvitations\tmails\n' > "$OUT/results.tsv"
for round in $(seq 1 "$ROUNDS"); do
    for n in $SIZES; do
        psql -X -q -v ON_ERROR_STOP=1 "$DB" \
            -c "DELETE FROM email_outbox WHERE tenant_id = '$TENANT'" \
            -c "DELETE FROM invitations WHERE tenant_id = '$TENANT'" \
            -c "VACUUM ANALYZE invitations" -c "VACUUM ANALYZE email_outbox" > /dev/null
        "$BIN" serve > "$OUT/server.$n.r$round.log" 2>&1 &
        SERVER_PID=$!
        for _ in $(seq 1 100); do
            curl -s -o /dev/null "http://127.0.0.1:$PORT/health/live" && break; sleep 0.1
        done
        idle=$(kb VmRSS)
        file=$OUT/members-$n.csv
        read -r code secs < <(curl -sS -o "$OUT/response.$n.r$round.json" -w '%{http_code} %{time_total}\n' \
            -H "Host: imp.localhost" -H "Authorization: Bearer $TOKEN" -H "Content-Type: text/csv" \
            --data-binary @"$file" "http://127.0.0.1:$PORT/api/v1/members/import")
        peak=$(kb VmHWM)
        stop_server
        inv=$(psql -XAtc "SELECT count(*) FROM invitations WHERE tenant_id = '$TENANT'" "$DB")
        mails=$(psql -XAtc "SELECT count(*) FROM email_outbox WHERE tenant_id = '$TENANT'" "$DB")
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$n" "$round" "$code" "$secs" \
            "$(stat -c %s "$file")" "$idle" "$peak" "$inv" "$mails" >> "$OUT/results.tsv"
        log "rows=$n round=$round http=$code ${secs}s idle_rss=${idle}kB peak_rss=${peak}kB invitations=$inv mails=$mails"
        [[ $code == 200 && $inv == "$n" && $mails == "$n" ]] || { log "unexpected outcome"; exit 1; }
    done
done

{
    echo "| rows | file | median s (min–max) | rows/s (median) | idle RSS | peak RSS (max) |"
    echo "|---:|---:|---|---:|---:|---:|"
    for n in $SIZES; do
        awk -F'\t' -v n="$n" 'NR > 1 && $1 == n { t[++k] = $4; b = $5; i = $6; if ($7 > p) p = $7 }
            END { asort(t); m = (k % 2 ? t[(k + 1) / 2] : (t[k / 2] + t[k / 2 + 1]) / 2);
                  printf "| %d | %.1f MiB | %.2f (%.2f–%.2f) | %d | %.0f MiB | %.0f MiB |\n",
                      n, b / 1048576, m, t[1], t[k], n / m, i / 1024, p / 1024 }' "$OUT/results.tsv"
    done
} | tee "$OUT/summary.md"
log "raw results in $OUT"
