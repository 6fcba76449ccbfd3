-- wrk script: replay recorded Elasticsearch requests, round robin.
-- Each line of the file is METHOD<TAB>PATH<TAB>BODY (the body on one line, as JSON or NDJSON with \n escaped as \\n).
-- Usage: wrk -s bench/load/replay.lua ... -- REQUESTS_TSV
local requests = {}
local counter = 0

function init(args)
  for line in io.lines(args[1]) do
    local method, path, body = line:match("^(%u+)\t([^\t]+)\t(.*)$")
    if method then
      body = body:gsub("\\\\n", "\n")
      requests[#requests + 1] = wrk.format(method, path, {["Content-Type"] = "application/x-ndjson"}, body)
    end
  end
end

function request()
  counter = counter + 1
  return requests[(counter % #requests) + 1]
end

-- `done` (the JSON summary line) comes from summary.lua beside this script.
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "summary.lua")
