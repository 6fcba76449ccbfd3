"""Settings: every value is checked against what it may be, never guessed; each list of names is defined once."""

import json

import pytest

from es_faq.api.openapi import SPEC_FILE
from es_faq.config.load import load_settings
from es_faq.config.settings import FUSIONS, SEARCH_MODES
from es_faq.errors import ConfigError
from es_faq.search.dictionary import KINDS


@pytest.mark.parametrize("raw, value", [("true", True), ("ON", True), (" 1 ", True), ("yes", True),
                                        ("false", False), ("Off", False), ("0", False), ("no", False)])
def test_a_boolean_takes_the_usual_words(raw, value):
    assert load_settings({"ES_FAQ_QUERY_LOG_ENABLED": raw}).query_log_enabled is value


@pytest.mark.parametrize("raw", ["ture", "", "enabled", "2"])
def test_an_unknown_boolean_is_refused_with_the_accepted_values(raw):
    with pytest.raises(ConfigError, match="query_log_enabled=.*use one of true, 1, yes, on, false, 0, no or off"):
        load_settings({"ES_FAQ_QUERY_LOG_ENABLED": raw})


def test_a_boolean_from_the_config_file(tmp_path):
    path = tmp_path / "es-faq.toml"
    path.write_text("query_log_enabled = false\n", encoding="utf-8")
    assert load_settings({"ES_FAQ_CONFIG": str(path)}).query_log_enabled is False


def test_modes_and_fusions_are_checked_against_their_one_list():
    assert [load_settings({"ES_FAQ_SEARCH_MODE": m}).search_mode for m in SEARCH_MODES] == list(SEARCH_MODES)
    assert [load_settings({"ES_FAQ_FUSION": f}).fusion for f in FUSIONS] == list(FUSIONS)
    with pytest.raises(ConfigError, match="choose bm25, vector, hybrid or rerank"):
        load_settings({"ES_FAQ_SEARCH_MODE": "semantic"})
    with pytest.raises(ConfigError, match="choose sum, rrf or weighted"):
        load_settings({"ES_FAQ_FUSION": "max"})


def _enums(node):
    if isinstance(node, dict):
        if "enum" in node:
            yield [value for value in node["enum"] if value is not None]
        for value in node.values():
            yield from _enums(value)
    elif isinstance(node, list):
        for value in node:
            yield from _enums(value)


def test_the_api_document_lists_the_same_names():
    """openapi.json is data, so it restates the names: it must restate them all, in the same order."""
    enums = list(_enums(json.loads(SPEC_FILE.read_text(encoding="utf-8"))))
    modes = [e for e in enums if set(e) & set(SEARCH_MODES)]
    kinds = [e for e in enums if set(e) & set(KINDS)]
    assert modes and all(e == list(SEARCH_MODES) for e in modes)
    assert kinds and all(e == list(KINDS) for e in kinds)


def test_the_writer_lock_s_old_setting_name_is_still_read_with_a_warning(tmp_path, caplog):
    assert load_settings({"ES_FAQ_MYSQL_LOCK_TTL_S": "7"}).writer_lock_ttl_s == 7.0
    assert "ES_FAQ_MYSQL_LOCK_TTL_S is deprecated: set ES_FAQ_WRITER_LOCK_TTL_S instead" in caplog.text
    both = {"ES_FAQ_MYSQL_LOCK_TTL_S": "7", "ES_FAQ_WRITER_LOCK_TTL_S": "9"}
    assert load_settings(both).writer_lock_ttl_s == 9.0  # the new name wins
    path = tmp_path / "es-faq.toml"
    path.write_text("mysql_lock_ttl_s = 5\n")
    assert load_settings({"ES_FAQ_CONFIG": str(path)}).writer_lock_ttl_s == 5.0


def test_the_probe_waits_as_long_as_a_search_unless_set_shorter():
    assert load_settings({"ES_FAQ_SEARCH_TIMEOUT_S": "3"}).probe_timeout_s == 3.0
    assert load_settings({"ES_FAQ_ENGINE_PROBE_TIMEOUT_S": "0.5"}).probe_timeout_s == 0.5
    assert load_settings({"ES_FAQ_ENGINE_PROBE_TIMEOUT_S": ""}).probe_timeout_s == 2.0  # as_env's unset
    for wrong in ("0", "-1", "2.5"):  # the default search_timeout_s is 2
        with pytest.raises(ConfigError, match=f"engine_probe_timeout_s={wrong}: set it above 0 and at most "
                                              r"search_timeout_s \(2\), or leave it unset"):
            load_settings({"ES_FAQ_ENGINE_PROBE_TIMEOUT_S": wrong})


@pytest.mark.parametrize("band", ["-0.1", "1.5"])
def test_the_order_band_is_a_distance_in_probability(band):
    assert load_settings({"ES_FAQ_DECIDE_ORDER_BAND": "0.3"}).decide_order_band == 0.3
    with pytest.raises(ConfigError, match=f"decide_order_band={float(band)}: a distance in P\\(right\\) from 0 to 1"):
        load_settings({"ES_FAQ_DECIDE_ORDER_BAND": band})
