-- wrk script: GET /api/v1/auth/me with a bearer access token, random tenant AND user (session)
-- per request, from a file of "<host> <token>" lines minted by bench/mint_tokens.py.
-- Usage: TOKENS=bench/out/tokens.txt wrk -c8 -t1 -d20s -s bench/me.lua http://127.0.0.1:8080
-- Optional: PORT (default 8080), URL_PATH (default /api/v1/auth/me; bench/run.sh MODE=members
-- sends /api/v1/members?limit=20 with the tenant admins' tokens).
local file = os.getenv("TOKENS") or "bench/out/tokens.txt"
local port = os.getenv("PORT") or "8080"
local path = os.getenv("URL_PATH") or "/api/v1/auth/me"
local hosts, auths = {}, {}
local non2xx_seen = 0

function setup(thread)
  thread:set("seed", math.random(1, 2^30))
end

function init(args)
  math.randomseed(seed or os.time())
  for line in io.lines(file) do
    local host, token = line:match("^(%S+)%s+(%S+)$")
    if host then
      hosts[#hosts + 1] = host .. ":" .. port
      auths[#auths + 1] = "Bearer " .. token
    end
  end
  if #hosts == 0 then
    error("no tokens in " .. file)
  end
end

function request()
  local i = math.random(1, #hosts)
  return wrk.format("GET", path, { ["Host"] = hosts[i], ["Authorization"] = auths[i] })
end

function response(status, headers, body)
  if status ~= 200 and non2xx_seen < 3 then
    non2xx_seen = non2xx_seen + 1
    io.stderr:write("non-200 response: " .. status .. " " .. tostring(body) .. "\n")
  end
end
