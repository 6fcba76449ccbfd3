"""Fuzz the API from its own OpenAPI document (schemathesis, in-process over WSGI).

Generated requests, valid and invalid, against the real node and model: no answer may be a 5xx
other than the documented 503, and every answer must be one the document describes (status,
content type, headers, body)."""

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import missing_required_header

from es_faq.api.openapi import spec
from es_faq.config.load import load_settings
from tests.test_api import app  # noqa: F401  (the fixture: the app over the demo knowledge base)

# The document as the server states it (the same function serves /openapi.json). Loaded here, not
# from a fixture: schemathesis' fixture-based loader does not work with this pytest.
schema = schemathesis.openapi.from_dict(spec(load_settings()))


@schema.parametrize()
# Bounded for 2 busy cores: a search costs a model call and an Elasticsearch round trip.
@settings(max_examples=40, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                 HealthCheck.function_scoped_fixture])
def test_api_conforms_to_its_document(case, app):  # noqa: F811
    # This app has no admin_token, so /v1/admin answers 404 admin_disabled to every request, by
    # design, where schemathesis expects 401 for a missing Authorization header; the 401s are
    # checked with a token configured, in tests/test_admin.py.
    excluded = [missing_required_header] if case.path.startswith("/v1/admin/") else []
    response = case.call_and_validate(app=app, excluded_checks=excluded)
    assert response.status_code < 500 or response.status_code == 503
