#!/usr/bin/env python3
"""Mint HS256 access tokens and session secrets OFFLINE for bench/scheduling_seed.sql's sessions
(the approach of bench/mint_tokens.py, for a list of sessions instead of a fixed id scheme).

    psql -XAt -F $'\\t' -c 'select i, grp, slug, tid, user_id, session_id
                            from bench_sched_sessions order by i' serein_bench_sched |
      JWT_SECRET=... SEREIN_MASTER_KEY=<64 hex> python3 bench/sched_tokens.py OUT_DIR

An optional seventh column names the token's roles, comma-separated (default "employee"; used by
bench/ws.sh for practitioners).

writes OUT_DIR/tokens_<grp>.txt ("<host> <token>" per line, in i order, one file per group)
and OUT_DIR/secret_hashes.tsv ("<session id>\\t\\\\x<sha256(secret) hex>" per line, for
`\\copy` then `UPDATE sessions SET secret_hash`).

The session secret is HKDF-SHA256(salt "serein session secret v1", ikm = master key,
info = session id bytes) as src/crypto/keyring.rs `Keyring::session_secret` derives it; the
claims are those src/crypto/tokens.rs issues for an access token (iss, aud "<slug>.<BASE_DOMAIN>",
sub, tid, roles, sid, typ "access", iat, exp far in the future, jti).
"""
import base64
import hashlib
import hmac
import json
import os
import sys
import time
import uuid

if len(sys.argv) != 2:
    sys.exit("usage: sched_tokens.py OUT_DIR < sessions.tsv")
out_dir = sys.argv[1]
secret = os.environ.get("JWT_SECRET", "").encode()
if len(secret) < 32:
    sys.exit("JWT_SECRET (>= 32 bytes) must be set to the server's secret")
master = bytes.fromhex(os.environ.get("SEREIN_MASTER_KEY", ""))
if len(master) != 32:
    sys.exit("SEREIN_MASTER_KEY (64 hex digits) must be set to the server's master key")
issuer = os.environ.get("JWT_ISSUER", "serein")
base = os.environ.get("BASE_DOMAIN", "localhost")
prk = hmac.new(b"serein session secret v1", master, hashlib.sha256).digest()


def b64(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


header = b64(json.dumps({"typ": "JWT", "alg": "HS256"}, separators=(",", ":")).encode())
now = int(time.time())
files = {}
counts = {}
hashes = open(os.path.join(out_dir, "secret_hashes.tsv"), "w")
n = 0
for line in sys.stdin:
    line = line.rstrip("\n")
    if not line:
        continue
    cols = line.split("\t")
    i, grp, slug, tenant, user, session = cols[:6]
    roles = cols[6].split(",") if len(cols) > 6 and cols[6] else ["employee"]
    sid = uuid.UUID(session)
    okm = hmac.new(prk, sid.bytes + b"\x01", hashlib.sha256).digest()
    hashes.write(f"{session}\t\\\\x{hashlib.sha256(okm).hexdigest()}\n")
    claims = {
        "iss": issuer,
        "aud": f"{slug}.{base}",
        "sub": user,
        "tid": tenant,
        "roles": roles,
        "sid": session,
        "typ": "access",
        "iat": now,
        "exp": now + 10 * 365 * 86400,
        "jti": str(uuid.uuid4()),
    }
    body = b64(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{header}.{body}".encode()
    sig = b64(hmac.new(secret, signing_input, hashlib.sha256).digest())
    if grp not in files:
        files[grp] = open(os.path.join(out_dir, f"tokens_{grp}.txt"), "w")
    files[grp].write(f"{slug}.{base} {header}.{body}.{sig}\n")
    n += 1
    counts[grp] = counts.get(grp, 0) + 1
print(f"{n} sessions minted: " + ", ".join(f"group {g}: {c}" for g, c in sorted(counts.items())), file=sys.stderr)
