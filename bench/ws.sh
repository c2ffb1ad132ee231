#!/usr/bin/env bash
# Realtime benchmarks (issue 12, item 8), on a disposable database (DB, default serein_bench_ws:
# DROPPED and recreated on every run), with release servers on PORT (A) and PORT + 1 (B):
#   a. hold     CONNECTIONS authenticated sockets opened at RATE per second on server A, held
#               DURATION seconds answering the server's pings (REALTIME_PING_SECS = PING_SECS:
#               a socket that does not answer is closed after two intervals), then closed.
#               Server RSS idle / with the sockets / after; RSS per socket; errors; handshake
#               latency; the server's CPU while the sockets idle. Target: 10,000 sockets.
#   b. fanout   RECEIVERS employees subscribed on server B (each to their consultation with
#               practitioner 0), SENDERS sockets of practitioner 0 on server A posting
#               `chat.send` round-robin into those rooms at FANOUT_RATE messages/s, MESSAGES
#               measured after RECEIVERS warm-up messages: latency = receipt of `chat.message`
#               on B − send on A (one client process, one clock). Then the same with the
#               receivers on A (same instance). FANOUT_ROUNDS rounds, cross and same alternated.
#   resume      one socket subscribes with after_seq = 0 (and nearer cursors) to a room holding
#               RESUME_BACKLOG messages: the messages it receives, then `subscribed` or the
#               close code.
#   c. history  GET /api/v1/consultations/{hist}/messages?limit=20 (40 messages, sealed by the
#               server; 20 decrypted per page) with wrk against its twins: the same route on a
#               consultation with no message (the handler's fixed cost: guard, room, page, read
#               marks), and GET /api/v1/notifications?limit=20 (20 unsealed rows of the same
#               list shape); then the 20-message page with the key cache off
#               (SEREIN_KEY_CACHE_TTL_SECS=0: a key read per open); and `wsclient aead`: the
#               server's open of one ~100-byte body in isolation (same crate, same steps).
# Data: bench/ws_seed.sql; tokens and session secrets minted offline by bench/sched_tokens.py.
# Client: bench/wsclient (its own Cargo workspace, built here into $TARGET/wsclient).
#
#   bench/ws.sh                                        # release build, then everything
#   SKIP_BUILD=1 CONNECTIONS=10000 DURATION=30 bench/ws.sh
#   SKIP_BUILD=1 PHASES=hold CONNECTIONS=19000 RATE=1000 bench/ws.sh      # look for the ceiling
#   SKIP_BUILD=1 PHASES=fanout FANOUT_RATE=200 MESSAGES=3000 bench/ws.sh
#
# Each measurement first waits for the 1-minute load average < LOAD_MAX (default 0.6), at most
# LOAD_WAIT_MAX seconds (then it proceeds and notes the load). Raw outputs: bench/out/<ts>-ws/
# (not committed); summary.md there and on stdout.
set -euo pipefail

# Run from a private copy, so that editing this file during a run cannot derail it.
if [[ -z ${BENCH_ROOT:-} ]]; then
    BENCH_ROOT=$(cd "$(dirname "$0")/.." && pwd)
    export BENCH_ROOT
    snap=$(mktemp /tmp/bench-ws-XXXXXX.sh)
    cp "$0" "$snap"
    exec bash "$snap" "$@"
fi
cd "$BENCH_ROOT"
ROOT=$PWD

PHASES=${PHASES-hold fanout resume history}
CONNECTIONS=${CONNECTIONS:-10000}
RATE=${RATE:-500}
DURATION=${DURATION:-30}
PING_SECS=${PING_SECS:-10}
RECEIVERS=${RECEIVERS:-100}
SENDERS=${SENDERS:-4}
FANOUT_RATE=${FANOUT_RATE:-50}
MESSAGES=${MESSAGES:-1500}
FANOUT_ROUNDS=${FANOUT_ROUNDS:-3}
RESUME_BACKLOG=${RESUME_BACKLOG:-200}
HIST_ROUNDS=${HIST_ROUNDS:-3}
HIST_DURATION=${HIST_DURATION:-20}
HIST_CONNS=${HIST_CONNS:-8}
WARMUP=${WARMUP:-5}
LOAD_MAX=${LOAD_MAX:-0.6}
LOAD_WAIT_MAX=${LOAD_WAIT_MAX:-900}
PORT=${PORT:-8080}
PORT_B=$((PORT + 1))
PGHOST=${PGHOST:-127.0.0.1}
PGPORT=${PGPORT:-5432}
PGUSER=${PGUSER:-postgres}
DB=${DB:-serein_bench_ws}
DB_POOL=${DB_POOL:-16}
[[ $DB == *bench* ]] || { echo "DB must contain 'bench' (it is dropped)" >&2; exit 2; }
(( RECEIVERS <= CONNECTIONS )) || { echo "RECEIVERS must be <= CONNECTIONS (the receivers are employees 1..RECEIVERS)" >&2; exit 2; }
DATABASE_URL="postgres://${PGUSER}@${PGHOST}:${PGPORT}/${DB}"
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET/release/serein
CLIENT=$TARGET/wsclient/release/wsclient
export PGHOST PGPORT PGUSER

OUT=${OUT:-$ROOT/bench/out/$(date -u +%Y%m%dT%H%M%SZ)-ws}
mkdir -p "$OUT"
RESULTS=$OUT/results.tsv
printf 'kind\tround\tvalue\tp50_ms\tp99_ms\tmax_ms\trequests\terrors\twall_s\tserver_cpu_s\tserver_b_cpu_s\tpg_cpu_s\tclient_cpu_s\tmachine_busy_s\tloadavg\twaited_s\n' > "$RESULTS"
log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" | tee -a "$OUT/run.log" >&2; }
q() { psql -XAtq -v ON_ERROR_STOP=1 -c "$1" "$DB"; }

# --- helpers ----------------------------------------------------------------------------------
# shellcheck source=bench/lib.sh
source bench/lib.sh
# A field of a wsclient "RESULT <what> k=v …" line: $1 file, $2 what, $3 key.
res() { awk -v w="$2" -v k="$3" '$1 == "RESULT" && $2 == w { for (i = 3; i <= NF; i++) { split($i, a, "="); if (a[1] == k) print substr($i, length(k) + 2) } }' "$1"; }

# --- servers ----------------------------------------------------------------------------------
PID_A=
PID_B=
stop_servers() {
    local p
    for p in "$PID_A" "$PID_B"; do
        if [[ -n "$p" ]] && kill -0 "$p" 2>/dev/null; then
            kill -TERM "$p" 2>/dev/null || true
            wait "$p" 2>/dev/null || true
        fi
    done
    PID_A= PID_B=
}
trap stop_servers EXIT
# start_server A|B [VAR=value …]: the release server on PORT (A) or PORT_B (B).
start_server() {
    local which=$1 port pid; shift
    port=$PORT; [[ $which == B ]] && port=$PORT_B
    env BIND="127.0.0.1:$port" METRICS_BIND=off "$@" "$BIN" serve >> "$OUT/server_$which.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 100); do
        curl -fsS -o /dev/null "http://127.0.0.1:$port/health/live" 2>/dev/null && break
        sleep 0.1
    done
    [[ $(cat "/proc/$pid/comm" 2>/dev/null) == serein ]] || { log "server $which (pid $pid) did not start: see $OUT/server_$which.log"; exit 1; }
    if [[ $which == A ]]; then PID_A=$pid; else PID_B=$pid; fi
    log "server $which: pid $pid on 127.0.0.1:$port, open files limit $(awk '/Max open files/{print $4}' "/proc/$pid/limits")${*:+, $*}"
}

for p in "$PORT" "$PORT_B"; do
    if curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$p/health/live" 2>/dev/null; then
        echo "something already serves 127.0.0.1:$p (another benchmark running?): refusing to measure" >&2
        exit 1
    fi
done
command -v wrk > /dev/null || { echo "wrk missing: apt-get install -y wrk" >&2; exit 1; }

# Descriptors: every socket is one in the server and one in the client (both inherit this).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
if [[ $NOFILE != unlimited ]] && (( CONNECTIONS + 64 > NOFILE )); then
    log "warning: open files limit $NOFILE < CONNECTIONS + 64: the hold will stop near $((NOFILE - 64)) (raise the hard limit: ulimit -Hn)"
fi

# --- machine ---------------------------------------------------------------------------------
{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "nproc: $(nproc)"
    echo "cpu: $(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)"
    echo "memory: $(awk '/MemTotal/{printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
    echo "kernel: $(uname -r)"
    echo "open files limit (soft/hard): $NOFILE/$(ulimit -Hn); ip_local_port_range: $(tr '\t' ' ' < /proc/sys/net/ipv4/ip_local_port_range); somaxconn: $(cat /proc/sys/net/core/somaxconn)"
    echo "postgres: $(psql -XAtc 'select version()' postgres)"
    echo "postgres settings: $(psql -XAtc "select string_agg(name || '=' || setting, ' ' order by name) from pg_settings where name in ('fsync','synchronous_commit','shared_buffers','ssl','max_connections','wal_level')" postgres)"
    echo "wrk: $(wrk -v 2>&1 | head -1)"
    echo "git: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)$(git -C "$ROOT" diff --quiet HEAD -- src migrations 2>/dev/null || echo ' (src or migrations dirty)')"
    echo "settings: PHASES='$PHASES' CONNECTIONS=$CONNECTIONS RATE=$RATE DURATION=$DURATION PING_SECS=$PING_SECS RECEIVERS=$RECEIVERS SENDERS=$SENDERS FANOUT_RATE=$FANOUT_RATE MESSAGES=$MESSAGES FANOUT_ROUNDS=$FANOUT_ROUNDS RESUME_BACKLOG=$RESUME_BACKLOG HIST_ROUNDS=$HIST_ROUNDS HIST_DURATION=$HIST_DURATION HIST_CONNS=$HIST_CONNS DB_POOL=$DB_POOL"
} > "$OUT/machine.txt"
cat "$OUT/machine.txt" >&2

# --- build, database, seed, tokens -----------------------------------------------------------
if [[ -z "${SKIP_BUILD:-}" ]]; then
    log "building (cargo build --release, target $TARGET)"
    CARGO_TARGET_DIR=$TARGET cargo build --release --quiet --bin serein
fi
if [[ -z "${SKIP_BUILD:-}" || ! -x $CLIENT ]]; then
    log "building bench/wsclient"
    (cd bench/wsclient && CARGO_TARGET_DIR=$TARGET/wsclient cargo build --release --quiet)
fi
JWT_SECRET=${JWT_SECRET:-$(head -c 48 /dev/urandom | base64 | tr -d '=+/\n')}
# Fixed by default (the bench database is rebuilt each run; nothing else uses this key).
SEREIN_MASTER_KEY=${SEREIN_MASTER_KEY:-5e4e1bbe0c0ffee05c4ed0000000000000000000000000000000000000000b01}
SEREIN_DATA_DIR=${SEREIN_DATA_DIR:-/tmp/serein-bench-ws-data}
mkdir -p "$SEREIN_DATA_DIR"
export JWT_SECRET SEREIN_MASTER_KEY SEREIN_DATA_DIR \
    RATE_LIMIT_PER_IP_PER_SEC=1000000 RATE_LIMIT_PER_IP_BURST=1000000 \
    AUTH_RATE_LIMIT_PER_MIN=1000000 AUTH_RATE_LIMIT_BURST=1000000 LOGIN_MAX_FAILURES=1000 \
    MAIL_WORKER=false JOBS_WORKER=false
export DATABASE_URL RUST_LOG=warn SEREIN_TENANTS_DIR= DB_MAX_CONNECTIONS=$DB_POOL

log "recreating $DB"
dropdb --if-exists "$DB"
"$BIN" migrate > "$OUT/migrate.log" 2>&1 || { cat "$OUT/migrate.log" >&2; exit 1; }
log "seeding ($CONNECTIONS employees, $RECEIVERS fan-out rooms)"
psql -X -q -v ON_ERROR_STOP=1 -v n_emp="$CONNECTIONS" -v k="$RECEIVERS" -f bench/ws_seed.sql "$DB" > "$OUT/seed.log"
cat "$OUT/seed.log" >&2

mint_sessions 'select i, grp, slug, tid, user_id, session_id, roles from bench_ws_sessions order by i'
q "select consultation_id from bench_ws_rooms order by j" > "$OUT/rooms.txt"
log "tokens minted: $(wc -l < "$OUT/tokens_e.txt") employees, practitioners $(cat "$OUT"/tokens_[pq].txt | wc -l), history $(wc -l < "$OUT/tokens_h.txt"); rooms $(wc -l < "$OUT/rooms.txt")"
HIST=00000000-0000-4000-f000-000000000001
EMPTY=00000000-0000-4000-f000-000000000002

# Run one measurement: $1 kind, $2 round, rest the command (stdout to <kind>.r<round>.txt).
# Sets M_WALL M_SRV M_SRV_B M_PG M_CLI M_BUSY M_LA M_WAITED.
measure() {
    local kind=$1 round=$2; shift 2
    local f=$OUT/$kind.r$round.txt lw s0 s1 sb0 sb1 p0 p1 b0 b1 t0 t1
    lw=$(wait_idle); M_LA=${lw% *}; M_WAITED=${lw#* }
    log "$kind round $round (loadavg $M_LA, waited ${M_WAITED}s)"
    s0=$(proc_cpu "${PID_A:-0}"); sb0=$(proc_cpu "${PID_B:-0}"); p0=$(pg_cpu); b0=$(machine_busy); t0=$(date +%s.%N)
    local TIMEFORMAT='%U %S'
    { time "$@" > "$f" 2> "$f.err"; } 2> "$f.time"
    t1=$(date +%s.%N); s1=$(proc_cpu "${PID_A:-0}"); sb1=$(proc_cpu "${PID_B:-0}"); p1=$(pg_cpu); b1=$(machine_busy)
    M_WALL=$(sub "$t0" "$t1"); M_SRV=$(sub "$s0" "$s1"); M_SRV_B=$(sub "$sb0" "$sb1"); M_PG=$(sub "$p0" "$p1"); M_BUSY=$(sub "$b0" "$b1")
    M_CLI=$(awk '{printf "%.2f", $1 + $2}' "$f.time")
}
row() {  # kind round value p50 p99 max requests errors
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" "$M_WALL" "$M_SRV" "$M_SRV_B" "$M_PG" "$M_CLI" "$M_BUSY" "$M_LA" "$M_WAITED" >> "$RESULTS"
}

# --- a. sockets held ---------------------------------------------------------------------------
if [[ " $PHASES " == *" hold "* ]]; then
    start_server A REALTIME_PING_SECS="$PING_SECS"
    # One authenticated request first, so that "idle" is a server that has served.
    first=$(head -1 "$OUT/tokens_e.txt")
    curl -fsS -o /dev/null -H "Host: ${first%% *}:$PORT" -H "Authorization: Bearer ${first#* }" "http://127.0.0.1:$PORT/api/v1/notifications"
    sleep 1
    measure hold 1 "$CLIENT" hold --addr "127.0.0.1:$PORT" --tokens "$OUT/tokens_e.txt" --n "$CONNECTIONS" \
        --rate "$RATE" --hold "$DURATION" --pid "$PID_A" --hz "$(getconf CLK_TCK)"
    f=$OUT/hold.r1.txt
    grep '^RESULT' "$f" | tee -a "$OUT/run.log" >&2
    held=$(res "$f" held held_at_end)
    row hold 1 "$held" "$(res "$f" handshake_ms p50)" "$(res "$f" handshake_ms p99)" "$(res "$f" handshake_ms max)" "$CONNECTIONS" \
        "$(( $(res "$f" errors failed_to_open) + $(res "$f" errors ended_early) ))"
    grep -E 'hold|socket|realtime|accept' "$OUT/server_A.log" | sort | uniq -c | sort -rn | head -5 > "$OUT/hold_server_messages.txt" || true
    stop_servers
fi

# --- b. fan-out across two instances -----------------------------------------------------------
if [[ " $PHASES " == *" fanout "* ]]; then
    start_server A
    start_server B
    fanout_run() {  # $1 label (cross|same), $2 receivers' port
        # Receivers subscribe from each room's newest message (an up-to-date client): live
        # fan-out only, no backlog (a backlog over 64 messages closes the socket: see resume).
        q "select r.consultation_id || ' ' || coalesce((select max(m.seq) from messages m where m.tenant_id = c.tenant_id and m.consultation_id = r.consultation_id), 0)
           from bench_ws_rooms r join consultations c on c.id = r.consultation_id order by r.j" > "$OUT/rooms_now.txt"
        "$CLIENT" fanout --send "127.0.0.1:$PORT" --recv "127.0.0.1:$2" --recv-tokens "$OUT/tokens_e.txt" \
            --rooms "$OUT/rooms_now.txt" --send-tokens "$OUT/tokens_p.txt" --receivers "$RECEIVERS" \
            --senders "$SENDERS" --rate "$FANOUT_RATE" --count "$MESSAGES" --warmup "$RECEIVERS" \
            --label "$1" --out "$OUT/$1.messages.tsv.$r"
    }
    for r in $(seq 1 "$FANOUT_ROUNDS"); do
        for mode in cross same; do
            port=$PORT_B; [[ $mode == same ]] && port=$PORT
            measure "fanout_$mode" "$r" fanout_run "$mode" "$port"
            f=$OUT/fanout_$mode.r$r.txt
            grep '^RESULT' "$f" | tee -a "$OUT/run.log" >&2
            row "fanout_$mode" "$r" "$(res "$f" "$mode" achieved_rate)" "$(res "$f" "$mode" p50_ms)" "$(res "$f" "$mode" p99_ms)" \
                "$(res "$f" "$mode" max_ms)" "$MESSAGES" "$(( $(res "$f" "$mode" lost) + $(res "$f" "$mode" duplicates) ))"
        done
    done
    stop_servers
fi

# --- resume: one socket joins a room with a backlog, from the start -----------------------------
# The issue asks for "resume after reconnect from a cursor without loss": a receiver that was
# away while RESUME_BACKLOG messages arrived subscribes with after_seq = 0 (server A alone).
if [[ " $PHASES " == *" resume "* ]]; then
    start_server A
    P_LINE=$(head -1 "$OUT/tokens_p.txt")
    ROOM1=$(head -1 "$OUT/rooms.txt")
    have=$(q "select count(*) from messages where consultation_id = '$ROOM1'")
    for j in $(seq $((have + 1)) "$RESUME_BACKLOG"); do
        code=$(curl -sS -o /dev/null -w '%{http_code}' -X POST -H "Host: ${P_LINE%% *}:$PORT" -H "Authorization: Bearer ${P_LINE#* }" \
            -H 'Content-Type: application/json' --data "{\"body\": \"backlog message $j, about a hundred characters long like a real chat message would be.\"}" \
            "http://127.0.0.1:$PORT/api/v1/consultations/$ROOM1/messages")
        [[ $code == 201 ]] || { log "posting backlog message $j: HTTP $code"; exit 1; }
    done
    : > "$OUT/resume.txt"
    for after in 0 $((RESUME_BACKLOG - 100)) $((RESUME_BACKLOG - 63)) $((RESUME_BACKLOG - 50)); do
        (( after >= 0 )) || continue
        "$CLIENT" subscribe --addr "127.0.0.1:$PORT" --tokens "$OUT/tokens_e.txt" --line 1 --room "$ROOM1" --after "$after" >> "$OUT/resume.txt"
    done
    log "resume, room of employee 1 with $(q "select count(*) from messages where consultation_id = '$ROOM1'") messages:"
    cat "$OUT/resume.txt" >&2
    stop_servers
fi

# --- c. history page: sealed vs twins ----------------------------------------------------------
if [[ " $PHASES " == *" history "* ]]; then
    start_server A
    H_LINE=$(head -1 "$OUT/tokens_h.txt"); Q_LINE=$(head -1 "$OUT/tokens_q.txt")
    H_HOST=${H_LINE%% *}
    # 40 messages of ~100 characters, alternately from the employee and the practitioner,
    # through the API (sealed by the server under the employee's subject key).
    for j in $(seq 1 40); do
        line=$H_LINE; (( j % 2 == 0 )) && line=$Q_LINE
        body=$(printf 'Message %02d of the history bench: how the week went, sleep, work, and what to try next.' "$j")
        code=$(curl -sS -o /dev/null -w '%{http_code}' -X POST -H "Host: ${line%% *}:$PORT" -H "Authorization: Bearer ${line#* }" \
            -H 'Content-Type: application/json' --data "{\"body\": \"$body\"}" \
            "http://127.0.0.1:$PORT/api/v1/consultations/$HIST/messages")
        [[ $code == 201 ]] || { log "posting history message $j: HTTP $code"; exit 1; }
    done
    q "VACUUM (ANALYZE) messages, message_reads, notifications"
    HIST_PATH="/api/v1/consultations/$HIST/messages?limit=20"
    EMPTY_PATH="/api/v1/consultations/$EMPTY/messages?limit=20"
    NOTIF_PATH="/api/v1/notifications?limit=20"
    for p in "$HIST_PATH" "$EMPTY_PATH" "$NOTIF_PATH"; do
        curl -sS -H "Host: $H_HOST:$PORT" -H "Authorization: Bearer ${H_LINE#* }" "http://127.0.0.1:$PORT$p"
        echo
    done > "$OUT/history_samples.json"
    python3 - "$OUT/history_samples.json" > "$OUT/history_shapes.txt" <<'PY'
import json, sys
names = ["messages (20 of 40, sealed)", "messages (empty room)", "notifications (first 20)"]
for name, line in zip(names, open(sys.argv[1])):
    d = json.loads(line)
    items = d.get("items", [])
    unreadable = sum(1 for i in items if i.get("unreadable"))
    body = sum(len(i.get("body") or "") for i in items)
    print(f"{name}: {len(items)} items, {len(line.encode()) - 1} bytes of JSON, "
          f"{unreadable} unreadable, {body} body characters")
PY
    cat "$OUT/history_shapes.txt" >&2
    grep -q '^messages (20 of 40, sealed): 20 items, .* 0 unreadable' "$OUT/history_shapes.txt" || { log "history page is not 20 readable messages"; exit 1; }
    hist_wrk() {  # $1 path, $2 duration
        TOKENS=$OUT/tokens_h.txt URL_PATH=$1 PORT=$PORT wrk -c"$HIST_CONNS" -t1 -d"$2" --latency -s bench/me.lua "http://127.0.0.1:$PORT"
    }
    hist_row() {  # $1 kind, $2 round
        local f=$OUT/$1.r$2.txt n bad
        n=$(awk '/requests in/{print $1}' "$f"); bad=$(awk '/Non-2xx/{print $NF}' "$f")
        row "$1" "$2" "$(awk '/^Requests\/sec:/{print $2}' "$f")" "$(wrk_pct "$f" 50)" "$(wrk_pct "$f" 99)" \
            "$(wrk_max "$f")" "$n" "${bad:-0}"
        log "  -> $(awk '/^Requests\/sec:/{print $2}' "$f") req/s, p50 $(wrk_pct "$f" 50) ms, p99 $(wrk_pct "$f" 99) ms, non-2xx ${bad:-0}, server CPU ${M_SRV}s, PostgreSQL CPU ${M_PG}s"
    }
    for p in "$HIST_PATH" "$EMPTY_PATH" "$NOTIF_PATH"; do hist_wrk "$p" "${WARMUP}s" > /dev/null 2>&1; done
    for r in $(seq 1 "$HIST_ROUNDS"); do
        measure history20 "$r" hist_wrk "$HIST_PATH" "${HIST_DURATION}s"; hist_row history20 "$r"
        measure history0 "$r" hist_wrk "$EMPTY_PATH" "${HIST_DURATION}s"; hist_row history0 "$r"
        measure notif20 "$r" hist_wrk "$NOTIF_PATH" "${HIST_DURATION}s"; hist_row notif20 "$r"
    done
    stop_servers
    # The key cache off: every open reads and unwraps the subject key (the cost on a server
    # whose cache has expired, or with SEREIN_KEY_CACHE_TTL_SECS=0 for immediate destruction).
    start_server A SEREIN_KEY_CACHE_TTL_SECS=0
    hist_wrk "$HIST_PATH" "${WARMUP}s" > /dev/null 2>&1
    for r in $(seq 1 "$HIST_ROUNDS"); do
        measure history20_nocache "$r" hist_wrk "$HIST_PATH" "${HIST_DURATION}s"; hist_row history20_nocache "$r"
    done
    stop_servers
    lw=$(wait_idle)
    "$CLIENT" aead --n 500000 --body-bytes 100 > "$OUT/aead.txt"
    echo "loadavg before: ${lw% *}" >> "$OUT/aead.txt"
    cat "$OUT/aead.txt" >&2
fi

# --- summary ---------------------------------------------------------------------------------
python3 - "$RESULTS" "$OUT" > "$OUT/summary.md" <<'PY'
import csv, os, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
out = sys.argv[2]
def f(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return float("nan")
def band(xs, d=1):
    xs = [x for x in xs if x == x]
    if not xs:
        return "?"
    if len(xs) == 1:
        return f"{xs[0]:.{d}f}"
    return f"**{statistics.median(xs):.{d}f}** ({min(xs):.{d}f}–{max(xs):.{d}f})"
def result(path, what):
    for line in open(path):
        p = line.split()
        if len(p) > 1 and p[0] == "RESULT" and p[1] == what:
            return dict(x.split("=", 1) for x in p[2:] if "=" in x)
    return {}
kinds = []
for r in rows:
    if r["kind"] not in kinds:
        kinds.append(r["kind"])
if "hold" in kinds:
    p = os.path.join(out, "hold.r1.txt")
    idle, ramp, held, hs, closed = (result(p, w) for w in ("idle", "ramp", "held", "handshake_ms", "closed"))
    errs = [l.strip() for l in open(p) if l.startswith("RESULT errors")]
    r = [x for x in rows if x["kind"] == "hold"][0]
    print("### a. sockets held\n")
    print(f"- target {held.get('target')}, ready {held.get('ready')}, **held to the end {held.get('held_at_end')}** over {held.get('hold_s')} s "
          f"(ramp {ramp.get('ramp_s')} s at {ramp.get('rate')}/s)")
    print(f"- pings during the hold: {held.get('pings_in_hold')} (per held socket: min {held.get('pings_per_socket_min')}, median {held.get('pings_per_socket_median')})")
    print(f"- server RSS: idle {int(idle.get('server_rss_kb', 0)) / 1024:.1f} MiB, after the ramp {int(ramp.get('server_rss_kb', 0)) / 1024:.1f} MiB, "
          f"**with the sockets {int(held.get('server_rss_kb', 0)) / 1024:.1f} MiB → {held.get('server_rss_per_socket_kb')} KiB per socket**, "
          f"after closing {int(closed.get('server_rss_kb', 0)) / 1024:.1f} MiB")
    print(f"- server descriptors: idle {idle.get('server_fds')}, held {held.get('server_fds')}, after closing {closed.get('server_fds')}")
    print(f"- server CPU: ramp {ramp.get('server_cpu_s')} s, hold (idle sockets, pings) {held.get('server_cpu_in_hold_s')} s over {held.get('hold_s')} s; "
          f"client RSS with the sockets {int(held.get('client_rss_kb', 0)) / 1024:.1f} MiB")
    print(f"- handshake (TCP + upgrade + ready) p50 {hs.get('p50')} ms, p99 {hs.get('p99')} ms, max {hs.get('max')} ms")
    print(f"- {errs[0] if errs else 'no error line'}; loadavg before {r['loadavg']}\n")
fan = [k for k in kinds if k.startswith("fanout")]
if fan:
    print("### b. fan-out\n")
    print("| path | rounds | achieved msg/s | p50 ms | p99 ms | max ms | lost + dup | server A CPU ms/msg | server B CPU ms/msg | PostgreSQL CPU ms/msg | loadavg before |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for k in fan:
        rs = [x for x in rows if x["kind"] == k]
        per = lambda c: statistics.median([f(x[c]) / max(f(x["requests"]), 1) * 1e3 for x in rs])
        print(f"| {k} | {len(rs)} | {band([f(x['value']) for x in rs])} | {band([f(x['p50_ms']) for x in rs], 2)} | {band([f(x['p99_ms']) for x in rs], 2)} | "
              f"{band([f(x['max_ms']) for x in rs], 1)} | {' / '.join(x['errors'] for x in rs)} | {per('server_cpu_s'):.2f} | {per('server_b_cpu_s'):.2f} | {per('pg_cpu_s'):.2f} | "
              f"{', '.join(x['loadavg'] for x in rs)} |")
    print()
hist = [k for k in kinds if k.startswith(("history", "notif"))]
if hist:
    print("### c. history page\n")
    print("| request | rounds | req/s | p50 ms | p99 ms | non-2xx | server CPU µs/req | PostgreSQL CPU µs/req | machine busy µs/req | loadavg before |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for k in hist:
        rs = [x for x in rows if x["kind"] == k]
        per = lambda c: statistics.median([f(x[c]) / max(f(x["requests"]), 1) * 1e6 for x in rs])
        print(f"| {k} | {len(rs)} | {band([f(x['value']) for x in rs])} | {band([f(x['p50_ms']) for x in rs], 2)} | {band([f(x['p99_ms']) for x in rs], 2)} | "
              f"{' / '.join(x['errors'] for x in rs)} | {per('server_cpu_s'):.0f} | {per('pg_cpu_s'):.0f} | {per('machine_busy_s'):.0f} | {', '.join(x['loadavg'] for x in rs)} |")
    print()
for name in ("resume.txt", "history_shapes.txt", "aead.txt"):
    p = os.path.join(out, name)
    if os.path.exists(p):
        print(f"{name}:\n```")
        print(open(p).read().rstrip())
        print("```")
PY
cat "$OUT/summary.md"
log "raw outputs in $OUT"
