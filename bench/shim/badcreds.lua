-- wrk: a flood of malformed credentials on the read route. Each request carries a random Bearer
-- token (agent-token shaped with a wrong checksum, JWT shaped with garbage, or junk) and a random
-- client address in X-Forwarded-For (198.18.0.0/15, the benchmarking range; only a header: no
-- traffic goes there), so every request is a new key of the shim's failure limiter when the shim
-- trusts 127.0.0.1 as a proxy (bench/shim/attacks.sh does). Env: THREAD, BENCH_SHIM_DIR.
local path = "/api/v1/chat/threads/" .. os.getenv("THREAD") .. "/events?after_seq=0&limit=50"
local hex = "0123456789abcdef"
local b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
local function rnd(alphabet, n)
  local t = {}
  for i = 1, n do local k = math.random(1, #alphabet); t[i] = alphabet:sub(k, k) end
  return table.concat(t)
end
local tcount = 0
function setup(thread) tcount = tcount + 1; thread:set("tid", tcount) end
function init(args) math.randomseed(os.time() * 1000 + (tid or 0)) end
function request()
  local kind, tok = math.random(1, 3)
  if kind == 1 then tok = "ama_eat_" .. rnd(hex, 72)
  elseif kind == 2 then tok = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9." .. rnd(b64, 120) .. "." .. rnd(b64, 43)
  else tok = rnd(b64, math.random(8, 200)) end
  local xff = "198." .. math.random(18, 19) .. "." .. math.random(0, 255) .. "." .. math.random(1, 254)
  return wrk.format("GET", path, { ["Authorization"] = "Bearer " .. tok, ["X-Forwarded-For"] = xff })
end
dofile(os.getenv("BENCH_SHIM_DIR") .. "/report.lua")
