"""gunicorn settings for `es-faq serve`: sized for a 2-core machine, models loaded once per worker."""

import os

# Each worker holds its own ONNX session; two workers with two threads each keep 2 cores busy
# while one request waits on Elasticsearch.
workers = int(os.environ.get("ES_FAQ_API_WORKERS", "2"))
threads = int(os.environ.get("ES_FAQ_API_THREADS", "2"))
worker_class = "gthread"
# onnxruntime sessions are not fork-safe: load models in each worker, not in the master.
preload_app = False
timeout = 30
graceful_timeout = 20
keepalive = 5
accesslog = "-"
errorlog = "-"
