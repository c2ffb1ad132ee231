#!/usr/bin/env python3
"""Contention on one slot (bench/scheduling.sh, measurement c): N employees book the SAME slot
of one practitioner at the same instant, for each of SLOTS slots; exactly one must get 201, every
other 409 (slot_taken / slot_unavailable), none a 5xx.

    python3 bench/contend.py --tokens OUT/tokens_c.txt --practitioner <uuid> --base <unix s> \\
        --n 100 --slots 20 [--spacing 120] [--length 60] [--port 8080] --out OUT/contend_n100.tsv

N keep-alive connections are opened first (one per employee); then, per slot, the N requests
are written back to back on them (well under a millisecond apart) and every answer is read.
Slot s starts at base + s * spacing minutes and is asked by employees (s * N + x) % len(tokens),
x = 0..N-1: N distinct employees (N <= len(tokens)), mixed companies.
Latency: from writing a request to reading its whole answer. Writes one line per request
(slot, x, status, code, ms) to --out and a summary to stdout.
"""
import argparse
import asyncio
import json
import statistics
import sys
import time
from datetime import datetime, timezone


async def read_response(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = None
    chunked = False
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value.strip())
        elif name == "transfer-encoding" and "chunked" in value.lower():
            chunked = True
    if chunked:
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                break
            body += chunk[:-2]
    else:
        body = await reader.readexactly(length or 0)
    return status, body


def pct(xs, p):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = max(0, min(len(xs) - 1, int(round(p / 100 * len(xs) + 0.5)) - 1))
    return xs[k]


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", required=True)
    ap.add_argument("--practitioner", required=True)
    ap.add_argument("--base", type=int, required=True)
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--slots", type=int, default=20)
    ap.add_argument("--spacing", type=int, default=120)
    ap.add_argument("--length", type=int, default=60)
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    tokens = [l.split() for l in open(a.tokens) if l.strip()]
    if a.n > len(tokens):
        sys.exit(f"--n {a.n} needs as many distinct employees, the file has {len(tokens)}")
    conns = [await asyncio.open_connection("127.0.0.1", a.port) for _ in range(a.n)]
    out = open(a.out, "w")
    out.write("slot\tx\tstatus\tcode\tms\n")
    per_slot = []
    all_ms = []
    winners_ms = []
    t_start = time.monotonic()
    for s in range(a.slots):
        starts = datetime.fromtimestamp(a.base + s * a.spacing * 60, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = json.dumps({"practitioner_id": a.practitioner, "starts_at": starts,
                           "length_minutes": a.length, "kind": "video"}).encode()
        reqs = []
        for x in range(a.n):
            host, token = tokens[(s * a.n + x) % len(tokens)]
            reqs.append(
                (f"POST /api/v1/consultations HTTP/1.1\r\nHost: {host}:{a.port}\r\n"
                 f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {len(body)}\r\n\r\n").encode() + body)
        sent = [0.0] * a.n
        for x, (_, writer) in enumerate(conns):
            writer.write(reqs[x])
            sent[x] = time.monotonic()

        async def answer(x):
            status, rbody = await read_response(conns[x][0])
            ms = (time.monotonic() - sent[x]) * 1000
            code = ""
            if status != 201:
                try:
                    code = json.loads(rbody).get("code", "")
                except ValueError:
                    code = "?"
            return x, status, code, ms

        results = await asyncio.gather(*(answer(x) for x in range(a.n)))
        counts = {}
        for x, status, code, ms in results:
            out.write(f"{s}\t{x}\t{status}\t{code}\t{ms:.3f}\n")
            key = f"{status}" + (f" {code}" if code else "")
            counts[key] = counts.get(key, 0) + 1
            all_ms.append(ms)
            if status == 201:
                winners_ms.append(ms)
        per_slot.append((starts, counts))
        await asyncio.sleep(0.2)
    wall = time.monotonic() - t_start
    for _, w in conns:
        w.close()
    out.close()
    ok = sum(1 for _, c in per_slot if c.get("201", 0) == 1)
    fivexx = sum(v for _, c in per_slot for k, v in c.items() if k.startswith("5"))
    total = {}
    for _, c in per_slot:
        for k, v in c.items():
            total[k] = total.get(k, 0) + v
    print(f"n={a.n} slots={a.slots}: slots with exactly one 201: {ok}/{a.slots}; 5xx: {fivexx}")
    print("answers: " + ", ".join(f"{k}: {v}" for k, v in sorted(total.items())))
    for starts, c in per_slot:
        print(f"  {starts}  " + ", ".join(f"{k}: {v}" for k, v in sorted(c.items())))
    print(f"latency ms (all {len(all_ms)} requests): p50 {pct(all_ms, 50):.1f}, p90 {pct(all_ms, 90):.1f}, "
          f"p99 {pct(all_ms, 99):.1f}, max {max(all_ms):.1f}; winners: median {statistics.median(winners_ms) if winners_ms else float('nan'):.1f}")
    print(f"wall {wall:.2f} s (including {a.slots} x 0.2 s pauses)")
    print(f"VERDICT {'PASS' if ok == a.slots and fivexx == 0 else 'FAIL'}")


asyncio.run(main())
