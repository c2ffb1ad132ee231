#!/usr/bin/env python3
"""Mint HS256 access tokens OFFLINE for the seeded bench sessions (bench/seed_me.sql).

    JWT_SECRET=... python3 bench/mint_tokens.py > tokens.txt      # "<host> <token>" per line
    JWT_SECRET=... python3 bench/mint_tokens.py --admins > admin_tokens.txt   # tenant admins
    SEREIN_MASTER_KEY=<64 hex> python3 bench/mint_tokens.py --secrets > secrets.tsv
        # "<i>\t\\x<secret hex>" per session: the session secrets the guard demands,
        # HKDF-SHA256(salt "serein session secret v1", ikm = master key, info = session id bytes)
        # as src/crypto/keyring.rs `Keyring::session_secret` derives them; bench/run.sh loads
        # them into `bench_secrets` and sets sessions.secret_hash = sha256(secret).

Claims as src/crypto/tokens.rs issues them for an access token: iss (JWT_ISSUER, default
"serein"), aud "<slug>.<BASE_DOMAIN>", sub, tid, roles ["employee"], sid, typ "access", iat,
exp, jti. exp is far in the future (the server checks it against its clock = real time).

Session i (1..SESSIONS_PER_TENANT * TENANTS) belongs to tenant n = (i - 1) / per + 1:
  tenant  00000000-0000-4000-8000-<100000000000 + n>
  user    00000000-0000-4000-a000-<100000000000 + i>
  session 00000000-0000-4000-b000-<100000000000 + i>
(the same deterministic ids seed_me.sql inserts and the pgbench scripts rebuild from i).
With --admins: sessions i = 10001..11000, the tenant admin of tenant n = i - 10000, roles
["tenant_admin"].
"""
import base64
import hashlib
import hmac
import json
import os
import sys
import time
import uuid

tenants = int(os.environ.get("TENANTS", "1000"))
per = int(os.environ.get("SESSIONS_PER_TENANT", "10"))

if sys.argv[1:] == ["--secrets"]:
    master = bytes.fromhex(os.environ.get("SEREIN_MASTER_KEY", ""))
    if len(master) != 32:
        sys.exit("SEREIN_MASTER_KEY (64 hex digits) must be set to the server's master key")
    prk = hmac.new(b"serein session secret v1", master, hashlib.sha256).digest()
    for i in range(1, tenants * per + tenants + 1):
        sid = uuid.UUID(f"00000000-0000-4000-b000-{100000000000 + i}")
        okm = hmac.new(prk, sid.bytes + b"\x01", hashlib.sha256).digest()
        sys.stdout.write(f"{i}\t\\\\x{okm.hex()}\n")
    sys.exit(0)

secret = os.environ.get("JWT_SECRET", "").encode()
if len(secret) < 32:
    sys.exit("JWT_SECRET (>= 32 bytes) must be set to the server's secret")
issuer = os.environ.get("JWT_ISSUER", "serein")
base = os.environ.get("BASE_DOMAIN", "localhost")


def b64(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


header = b64(json.dumps({"typ": "JWT", "alg": "HS256"}, separators=(",", ":")).encode())
now = int(time.time())
out = sys.stdout
admins = sys.argv[1:] == ["--admins"]
sessions = range(tenants * per + 1, tenants * per + tenants + 1) if admins else range(1, tenants * per + 1)
for i in sessions:
    n = i - tenants * per if admins else (i - 1) // per + 1
    claims = {
        "iss": issuer,
        "aud": f"t{n}.{base}",
        "sub": f"00000000-0000-4000-a000-{100000000000 + i}",
        "tid": f"00000000-0000-4000-8000-{100000000000 + n}",
        "roles": ["tenant_admin"] if admins else ["employee"],
        "sid": f"00000000-0000-4000-b000-{100000000000 + i}",
        "typ": "access",
        "iat": now,
        "exp": now + 10 * 365 * 86400,
        "jti": str(uuid.uuid4()),
    }
    body = b64(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{header}.{body}".encode()
    sig = b64(hmac.new(secret, signing_input, hashlib.sha256).digest())
    out.write(f"t{n}.{base} {header}.{body}.{sig}\n")
