#!/usr/bin/env python3
"""Mint HS256 access tokens OFFLINE for the seeded bench sessions (bench/seed_me.sql).

    JWT_SECRET=... python3 bench/mint_tokens.py > tokens.txt      # "<host> <token>" per line

Claims as src/crypto/tokens.rs issues them for an access token: iss (JWT_ISSUER, default
"serein"), aud "<slug>.<BASE_DOMAIN>", sub, tid, roles ["employee"], sid, typ "access", iat,
exp, jti. exp is far in the future (the server checks it against its clock = real time).

Session i (1..SESSIONS_PER_TENANT * TENANTS) belongs to tenant n = (i - 1) / per + 1:
  tenant  00000000-0000-4000-8000-<100000000000 + n>
  user    00000000-0000-4000-a000-<100000000000 + i>
  session 00000000-0000-4000-b000-<100000000000 + i>
(the same deterministic ids seed_me.sql inserts and the pgbench scripts rebuild from i).
"""
import base64
import hashlib
import hmac
import json
import os
import sys
import time
import uuid

secret = os.environ.get("JWT_SECRET", "").encode()
if len(secret) < 32:
    sys.exit("JWT_SECRET (>= 32 bytes) must be set to the server's secret")
issuer = os.environ.get("JWT_ISSUER", "serein")
base = os.environ.get("BASE_DOMAIN", "localhost")
tenants = int(os.environ.get("TENANTS", "1000"))
per = int(os.environ.get("SESSIONS_PER_TENANT", "10"))


def b64(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


header = b64(json.dumps({"typ": "JWT", "alg": "HS256"}, separators=(",", ":")).encode())
now = int(time.time())
out = sys.stdout
for i in range(1, tenants * per + 1):
    n = (i - 1) // per + 1
    claims = {
        "iss": issuer,
        "aud": f"t{n}.{base}",
        "sub": f"00000000-0000-4000-a000-{100000000000 + i}",
        "tid": f"00000000-0000-4000-8000-{100000000000 + n}",
        "roles": ["employee"],
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
