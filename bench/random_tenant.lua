-- wrk script: GET /api/v1/tenant/profile on a random tenant host t<N>.localhost:8080 per request.
-- Usage: wrk -c8 -t1 -d20s -s bench/random_tenant.lua http://127.0.0.1:8080
-- Optional: TENANTS=<n> in the environment (default 1000), PORT (default 8080).
local tenants = tonumber(os.getenv("TENANTS") or "1000")
local port = os.getenv("PORT") or "8080"
local path = "/api/v1/tenant/profile"
local non2xx_seen = 0

function setup(thread)
  thread:set("seed", math.random(1, 2^30))
end

function init(args)
  math.randomseed(seed or os.time())
end

function request()
  local n = math.random(1, tenants)
  return wrk.format("GET", path, { ["Host"] = "t" .. n .. ".localhost:" .. port })
end

function response(status, headers, body)
  if status ~= 200 and non2xx_seen < 3 then
    non2xx_seen = non2xx_seen + 1
    io.stderr:write("non-200 response: " .. status .. " " .. tostring(body) .. "\n")
  end
end
