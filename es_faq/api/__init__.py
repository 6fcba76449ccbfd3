"""The HTTP API: a Flask application factory over the retrieval library, served by gunicorn."""
