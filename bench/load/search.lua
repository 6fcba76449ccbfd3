-- wrk script: POST /v1/search with the queries of a faq-bench split, round robin.
-- Usage: wrk -s bench/load/search.lua ... -- QUERIES_JSONL K
local queries = {}
local k = 5
local counter = 0

function init(args)
  local path = args[1]
  k = tonumber(args[2] or "5")
  for line in io.lines(path) do
    local q = line:match('"query":%s*"(.-)"')
    if q then queries[#queries + 1] = q end
  end
end

function request()
  counter = counter + 1
  local q = queries[(counter % #queries) + 1]
  local body = '{"query": "' .. q .. '", "k": ' .. k .. '}'
  return wrk.format("POST", "/v1/search", {["Content-Type"] = "application/json"}, body)
end

-- `done` (the JSON summary line) comes from summary.lua beside this script.
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "summary.lua")
