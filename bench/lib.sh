# Helpers shared by the bench drivers (bench/scheduling.sh, bench/ws.sh), sourced after they
# define `log` and set LOAD_MAX / LOAD_WAIT_MAX. From bench/run.sh's.

loadavg1() { cut -d' ' -f1 /proc/loadavg; }
# Wait until the 1-minute load average is below LOAD_MAX (poll every 10 s, give up after
# LOAD_WAIT_MAX seconds and say so). Prints "<loadavg> <waited_seconds>[!]".
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
# CPU seconds the whole machine has been busy so far.
machine_busy() { awk '/^cpu /{busy=$2+$3+$4+$7+$8+$9; printf "%.2f\n", busy/100}' /proc/stat; }
# CPU seconds of process $1 so far (0 when there is no such process).
proc_cpu() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f\n", ($14+$15)/hz}' "/proc/$1/stat" 2>/dev/null || echo 0; }
# CPU seconds used by PostgreSQL so far (live processes + what the postmaster collected).
pg_cpu() {
    { cat /proc/[0-9]*/stat 2>/dev/null || true; } |
        awk -v hz="$(getconf CLK_TCK)" '$2 == "(postgres)" { pid[$1] = 1; ppid[$1] = $4; own[$1] = $14 + $15; kids[$1] = $16 + $17 }
            END { for (p in pid) { s += own[p]; if (!(ppid[p] in pid)) s += kids[p] } printf "%.2f\n", s / hz }'
}
sub() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", b - a}'; }
# wrk's latency percentile $2 in ms, from its --latency output in file $1
wrk_pct() {
    awk -v p="$2" '$1 == p"%" { v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v);
        f = (u == "us") ? 0.001 : (u == "s") ? 1000 : 1; printf "%.2f", v * f }' "$1"
}
# wrk's max latency in ms
wrk_max() {
    awk '$1 == "Latency" && NF >= 4 { v = $4; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v);
        f = (u == "us") ? 0.001 : (u == "s") ? 1000 : 1; printf "%.2f", v * f; exit }' "$1"
}
# Mint access tokens and session secrets offline (bench/sched_tokens.py) for the sessions that
# the query $1 lists in $DB ("i, grp, slug, tid, user_id, session_id[, roles]"), into
# $OUT/tokens_<grp>.txt, and store the secrets' hashes on those sessions.
mint_sessions() {
    psql -XAt -F $'\t' -c "$1" "$DB" | python3 bench/sched_tokens.py "$OUT" 2>> "$OUT/run.log"
    psql -X -q -v ON_ERROR_STOP=1 "$DB" > "$OUT/secrets.log" <<SQL
BEGIN;
CREATE TEMP TABLE h (session_id uuid, secret_hash bytea) ON COMMIT DROP;
\copy h FROM '$OUT/secret_hashes.tsv'
UPDATE sessions s SET secret_hash = h.secret_hash FROM h WHERE s.id = h.session_id;
COMMIT;
VACUUM (ANALYZE) sessions;
SQL
    rm -f "$OUT/secret_hashes.tsv"
}
