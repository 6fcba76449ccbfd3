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

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format('{"requests": %d, "seconds": %.1f, "rps": %.1f, "p50_ms": %.1f, "p95_ms": %.1f, "p99_ms": %.1f, "non_2xx": %d, "socket_errors": %d}\n',
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000,
    errors.status, errors.connect + errors.read + errors.write + errors.timeout))
end
