-- wrk: authenticated WRITE route (messages.send), unique content per request. Env: JWT, THREAD.
local jwt, thread = os.getenv("JWT"), os.getenv("THREAD")
local path = "/api/v1/chat/threads/" .. thread .. "/messages"
local headers = { ["Authorization"] = "Bearer " .. jwt, ["Content-Type"] = "application/json" }
local n, seed = 0, 0
local tcount = 0
function setup(thread) tcount = tcount + 1; thread:set("tid", tcount) end
function init(args) seed = (tid or 0) * 1000000000 + math.random(1, 999999) * 1000 end
function request()
  n = n + 1
  return wrk.format("POST", path, headers, '{"content":"wrk ' .. (seed + n) .. '"}')
end
dofile(os.getenv("BENCH_SHIM_DIR") .. "/report.lua")
