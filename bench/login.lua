-- wrk script: POST /api/v1/auth/login for a random seeded person per request (distinct users:
-- the lock-out budget and the per-account limiter never see the same address twice in a row).
-- Users u<g>@t<n>.bench.example with g = (n - 1) * 1000 + j, j in LOGIN_J_MIN..LOGIN_J_MAX
-- (employees or practitioners, never admins: no TOTP step), memberships with g % 97 = 0 are
-- disabled in bench/seed.sql and are skipped. Their password hash is set by run.sh MODE=login.
-- Usage: PASSWORD=... wrk -c4 -t1 -d20s --latency -s bench/login.lua http://127.0.0.1:8080
local tenants = tonumber(os.getenv("TENANTS") or "1000")
local jmin = tonumber(os.getenv("LOGIN_J_MIN") or "100")
local jmax = tonumber(os.getenv("LOGIN_J_MAX") or "149")
local port = os.getenv("PORT") or "8080"
local password = os.getenv("PASSWORD") or error("PASSWORD is not set")
local path = "/api/v1/auth/login"
local non2xx_seen = 0

function setup(thread)
  thread:set("seed", math.random(1, 2^30))
end

function init(args)
  math.randomseed(seed or os.time())
end

function request()
  local n, g
  repeat
    n = math.random(1, tenants)
    g = (n - 1) * 1000 + math.random(jmin, jmax)
  until g % 97 ~= 0
  local body = '{"email":"u' .. g .. '@t' .. n .. '.bench.example","password":"' .. password .. '"}'
  return wrk.format("POST", path, {
    ["Host"] = "t" .. n .. ".localhost:" .. port,
    ["Content-Type"] = "application/json",
  }, body)
end

function response(status, headers, body)
  if status ~= 200 and non2xx_seen < 3 then
    non2xx_seen = non2xx_seen + 1
    io.stderr:write("non-200 response: " .. status .. " " .. tostring(body) .. "\n")
  end
end
