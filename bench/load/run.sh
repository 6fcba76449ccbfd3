#!/usr/bin/env bash
# Drive /v1/search from a second process (wrk) on loopback against gunicorn serving an alias.
#   [ES_FAQ_SEARCH_MODE=hybrid] bench/load/run.sh ALIAS QUERIES_JSONL [SECONDS] [CONNECTIONS]
# The server searches in search_mode (default rerank); set ES_FAQ_SEARCH_MODE to compare.
# Prints wrk's summary as JSON, then the RSS of each gunicorn worker.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v wrk >/dev/null || { echo "bench/load/run.sh needs wrk: apt-get install -y wrk" >&2; exit 1; }
alias="$1" queries="$2" seconds="${3:-60}" connections="${4:-4}"
port=8765
ES_FAQ_INDEX_ALIAS="$alias" ES_FAQ_QUERY_LOG_ENABLED=false .venv/bin/es-faq serve --port "$port" >/tmp/es-faq-load-server.log 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 1; done
# Warm-up, then the measured run.
wrk -t 1 -c "$connections" -d 10s -s bench/load/search.lua "http://127.0.0.1:$port" -- "$queries" 5 >/dev/null
wrk -t "$(( connections < 2 ? 1 : 2 ))" -c "$connections" -d "${seconds}s" --timeout 10s -s bench/load/search.lua "http://127.0.0.1:$port" -- "$queries" 5 | tail -1
for pid in $(pgrep -P "$server"); do
  echo "{\"worker_pid\": $pid, \"rss_mib\": $(( $(awk '/VmRSS/ {print $2}' /proc/$pid/status) / 1024 ))}"
done
