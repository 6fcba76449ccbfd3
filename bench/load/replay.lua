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

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format('{"requests": %d, "seconds": %.1f, "rps": %.1f, "p50_ms": %.1f, "p95_ms": %.1f, "p99_ms": %.1f, "non_2xx": %d, "socket_errors": %d}\n',
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000,
    errors.status, errors.connect + errors.read + errors.write + errors.timeout))
end
