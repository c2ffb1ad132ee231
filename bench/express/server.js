// The seeds' own stack, for comparison (issue 10): Express 4 + node-postgres + jsonwebtoken
// serving GET /api/v1/auth/me the way Serein does, on the same data (bench/run.sh MODE=express).
//
// Per request: the HS256 access token is verified (algorithm, signature, issuer, audience =
// the Host, expiry; then type `access` and tenant claim), the session secret is derived like
// `Keyring::session_secret` (HKDF-SHA256 of the master key, salt "serein session secret v1",
// info = the session id's 16 bytes), then the same four statements as bench/me_tx.sql, each
// PREPARED (named): BEGIN; the context (set_config ×6 + app_private.session_guard) with bound
// parameters; the /auth/me SELECT; COMMIT. A 401 `session_revoked` when the guard refuses.
// What it does not do (Serein does): resolve the Host's tenant against the database (it takes
// the tenant from the token, checked against nothing but the audience), Casbin, metrics, the
// request id, the security headers, the load shedding and the timeout.
//
//   PORT=8080 DATABASE_URL=postgres://… JWT_SECRET=… SEREIN_MASTER_KEY=<64 hex> \
//   WORKERS=1|2 POOL_MAX=8 node bench/express/server.js
// WORKERS=2 runs a cluster of two processes (node:cluster), each with POOL_MAX / 2
// connections, so the database sees the same number of connections (8) either way.
'use strict';

const cluster = require('node:cluster');
const crypto = require('node:crypto');

const workers = Number(process.env.WORKERS || 1);
const poolMax = Number(process.env.POOL_MAX || 8);

if (workers > 1 && cluster.isPrimary) {
  for (let i = 0; i < workers; i++) cluster.fork();
  cluster.on('exit', (w, code) => {
    console.error(`worker ${w.process.pid} exited (${code})`);
    process.exit(1);
  });
  return;
}

const express = require('express');
const jwt = require('jsonwebtoken');
const { Pool } = require('pg');

const secret = process.env.JWT_SECRET;
const master = Buffer.from(process.env.SEREIN_MASTER_KEY || '', 'hex');
if (!secret || master.length !== 32) {
  console.error('JWT_SECRET and SEREIN_MASTER_KEY (64 hex digits) are required');
  process.exit(2);
}
const issuer = process.env.JWT_ISSUER || 'serein';
const url = new URL(process.env.DATABASE_URL);
// TLS like the server's pool and pgbench (sslmode=prefer with ssl = on: TLS on loopback).
const ssl = url.searchParams.get('sslmode') === 'disable' ? false : { rejectUnauthorized: false };
url.search = '';
const pool = new Pool({
  connectionString: url.toString(),
  ssl,
  max: Math.max(1, Math.floor(poolMax / workers)),
  application_name: 'express-bench',
});

const CONTEXT = {
  name: 'ctx',
  text: "SELECT set_config('role', 'serein_app', true), set_config('app.tenant_id', $1::text, true), " +
    "set_config('app.user_id', $2::text, true), set_config('app.roles', $3::text, true), " +
    "set_config('statement_timeout', '15000', true), set_config('idle_in_transaction_session_timeout', '60000', true), " +
    'app_private.session_guard($4::uuid, $5::uuid, $6::uuid, $7::bytea, $8::text[], $9::timestamptz)',
};
const ME = {
  name: 'me',
  text: 'SELECT u.email, u.display_name, u.locale, u.email_verified_at IS NOT NULL AS "verified!", ' +
    'coalesce(app_private.own_totp_enabled(), false) AS "totp!", m.department AS "department?", m.status AS "status?" ' +
    'FROM users u LEFT JOIN memberships m ON m.user_id = u.id AND m.tenant_id = $2 WHERE u.id = $1',
};
const BEGIN = { name: 'begin', text: 'BEGIN' };
const COMMIT = { name: 'commit', text: 'COMMIT' };

function sessionSecret(sid) {
  const info = Buffer.from(sid.replace(/-/g, ''), 'hex');
  return Buffer.from(crypto.hkdfSync('sha256', master, 'serein session secret v1', info, 32));
}

function problem(res, status, code) {
  res.status(status).type('application/problem+json').send(JSON.stringify({ status, code }));
}

const app = express();
app.disable('x-powered-by');
app.disable('etag');

app.get('/api/v1/auth/me', async (req, res) => {
  const host = (req.headers.host || '').split(':')[0];
  const auth = req.headers.authorization || '';
  const token = auth.startsWith('Bearer ') ? auth.slice(7).trim() : '';
  let claims;
  try {
    claims = jwt.verify(token, secret, { algorithms: ['HS256'], issuer, audience: host });
  } catch (e) {
    return problem(res, 401, 'unauthorized');
  }
  if (claims.typ !== 'access' || !claims.sid || !Array.isArray(claims.roles) || claims.roles.length === 0) {
    return problem(res, 401, 'unauthorized');
  }
  let client;
  try {
    client = await pool.connect();
  } catch (e) {
    return problem(res, 503, 'database_unavailable');
  }
  let done = false;
  try {
    await client.query(BEGIN);
    try {
      await client.query({
        ...CONTEXT,
        values: [claims.tid, claims.sub, claims.roles.join(','), claims.tid, claims.sub, claims.sid,
          sessionSecret(claims.sid), claims.roles, new Date()],
      });
    } catch (e) {
      await client.query('ROLLBACK');
      done = true;
      client.release();
      return e.code === 'SR401' ? problem(res, 401, 'session_revoked') : problem(res, 500, 'internal');
    }
    const r = await client.query({ ...ME, values: [claims.sub, claims.tid] });
    await client.query(COMMIT);
    done = true;
    client.release();
    const u = r.rows[0];
    if (!u) return problem(res, 401, 'session_revoked');
    res.json({
      user: {
        id: claims.sub, email: u.email, display_name: u.display_name, locale: u.locale,
        email_verified: u['verified!'], totp_enabled: u['totp!'],
      },
      tenant_id: claims.tid,
      host,
      roles: claims.roles,
      session_id: claims.sid,
      membership: u['status?'] === null ? null : { department: u['department?'], status: u['status?'] },
    });
  } catch (e) {
    if (!done) client.release(e);
    problem(res, 500, 'internal');
  }
});

app.listen(Number(process.env.PORT || 8080), '127.0.0.1');
