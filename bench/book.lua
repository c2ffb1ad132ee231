-- wrk script: POST /api/v1/consultations, every request a distinct free slot booked by an
-- employee free at that time (bench/scheduling.sh, measurement b; data bench/scheduling_seed.sql).
-- Request j (j = J0, J0 + 1, ...; ONE wrk thread, -t1, so that j is one counter):
--   practitioner  PRACTITIONERS line (j % NP) + 1
--   starts_at     BASE + (j // NP) * LENGTH minutes     (LENGTH-minute slots, back to back)
--   employee      TOKENS line (j % NE) + 1              ("<host> <token>"; NP <= NE)
-- At one start the NP practitioners are booked by NP consecutive (so distinct) employees; an
-- employee comes back every NE requests, i.e. NE / NP slots later: never overlapping.
-- Counts the answers by status and prints them in done(); prints the first few non-201 bodies.
-- Usage: TOKENS=... PRACTITIONERS=... BASE=<unix seconds> wrk -t1 -c16 -d20s -s bench/book.lua URL
-- Optional: PORT (8080), LENGTH (15), J0 (0), KIND (video).
local tokens_file = os.getenv("TOKENS") or error("TOKENS is not set")
local prac_file = os.getenv("PRACTITIONERS") or error("PRACTITIONERS is not set")
local base = tonumber(os.getenv("BASE") or error("BASE is not set"))
local port = os.getenv("PORT") or "8080"
local length = tonumber(os.getenv("LENGTH") or "15")
local kind = os.getenv("KIND") or "video"
local path = "/api/v1/consultations"
local hosts, auths, pracs = {}, {}, {}
local threads = {}
local shown = 0

function setup(thread)
  threads[#threads + 1] = thread
end

function init(args)
  j = tonumber(os.getenv("J0") or "0")
  n201, n409, n4xx, n5xx, nother = 0, 0, 0, 0, 0
  for line in io.lines(tokens_file) do
    local host, token = line:match("^(%S+)%s+(%S+)$")
    if host then
      hosts[#hosts + 1] = host .. ":" .. port
      auths[#auths + 1] = "Bearer " .. token
    end
  end
  for line in io.lines(prac_file) do
    if line:match("%S") then pracs[#pracs + 1] = line:match("^%s*(%S+)") end
  end
  if #pracs == 0 or #hosts < #pracs then
    error("need at least as many tokens (" .. #hosts .. ") as practitioners (" .. #pracs .. ")")
  end
end

function request()
  local np, ne = #pracs, #hosts
  local p = j % np
  local k = math.floor(j / np)
  local e = j % ne
  j = j + 1
  local starts = os.date("!%Y-%m-%dT%H:%M:%SZ", base + k * length * 60)
  local body = '{"practitioner_id":"' .. pracs[p + 1] .. '","starts_at":"' .. starts ..
    '","length_minutes":' .. length .. ',"kind":"' .. kind .. '"}'
  return wrk.format("POST", path, {
    ["Host"] = hosts[e + 1],
    ["Authorization"] = auths[e + 1],
    ["Content-Type"] = "application/json",
  }, body)
end

function response(status, headers, body)
  if status == 201 then
    n201 = n201 + 1
  else
    if status == 409 then n409 = n409 + 1
    elseif status >= 500 then n5xx = n5xx + 1
    elseif status >= 400 then n4xx = n4xx + 1
    else nother = nother + 1 end
    if shown < 5 then
      shown = shown + 1
      io.stderr:write("non-201 response: " .. status .. " " .. tostring(body) .. "\n")
    end
  end
end

function done(summary, latency, requests)
  local t = { n201 = 0, n409 = 0, n4xx = 0, n5xx = 0, nother = 0, j = 0 }
  for _, thread in ipairs(threads) do
    for k, _ in pairs(t) do
      t[k] = t[k] + (thread:get(k) or 0)
    end
  end
  io.write(string.format("status 201: %d\nstatus 409: %d\nstatus other 4xx: %d\nstatus 5xx: %d\nstatus other: %d\nrequests sent (last j): %d\n",
    t.n201, t.n409, t.n4xx, t.n5xx, t.nother, t.j))
end
