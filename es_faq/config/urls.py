"""URLs in settings: es_url's list of nodes, split and checked as the client will read it, and any URL
with its password masked before it is shown (`es-faq config`, repr, logs, errors)."""

from __future__ import annotations

import re

from ..errors import ConfigError

# Query parameters that carry a secret in the URLs drivers accept (`?password=...`).
_SECRET_PARAM = re.compile(r"([?&;](?:password|passwd|pwd|secret|token|access_token|api_key|apikey)=)[^&;#]*",
                           re.IGNORECASE)


# Where a list of URLs splits: at a comma before the next URL's scheme, so that a comma in a
# password (or anywhere else inside one URL) does not split it.
_URL_SEPARATOR = re.compile(r"\s*,\s*(?=[A-Za-z][A-Za-z0-9+.-]*://)")


def split_urls(value: str) -> list[str]:
    """The URLs of a comma-separated list (es_url), stripped, empty ones dropped."""
    return [url.strip(" ,") for url in _URL_SEPARATOR.split(value) if url.strip(" ,")]


def check_es_url(es_url: str) -> None:
    """Each node parsed as the client will parse it; a message names the setting and the node's
    place in the list, never the URL: one the parser cannot split may show its password unmasked."""
    from elastic_transport.client_utils import url_to_node_config

    urls = split_urls(es_url)
    if not urls:
        raise ConfigError("es_url is empty: set ES_FAQ_ES_URL to http://HOST:PORT (or several, comma-separated)")
    for number, url in enumerate(urls, 1):
        place = f"node {number} of {len(urls)} in " if len(urls) > 1 else ""
        scheme = url.partition("://")[0]
        try:
            url_to_node_config(url, use_default_ports_for_scheme=False)
            ok = scheme in ("http", "https")
        except ValueError:
            ok = False
        if not ok:
            raise ConfigError(
                f"{place}es_url (ES_FAQ_ES_URL) is not an http(s)://[USER:PASSWORD@]HOST:PORT URL (the URL is "
                "not shown: it may hold a password). Check the scheme, the port (a number) and the brackets "
                "of an IPv6 host; percent-encode '@', ':' and '/' in a password; list several nodes "
                "comma-separated, e.g. http://127.0.0.1:9200,http://127.0.0.1:9201")


def mask_url(url: str) -> str:
    """The URL with its password (and any password-like query parameter) shown as ***.

    Split by hand, not by urllib: a password may hold an unescaped '@', ':' or '/', which urllib
    would misread (and IPv6 hosts make it raise). Everything before the last '@' is taken as the
    user info, and all of it after the first ':' is hidden: when in doubt, hide more. A list of
    URLs (es_url with several nodes) is masked URL by URL."""
    urls = _URL_SEPARATOR.split(url)
    if len(urls) > 1:
        return ",".join(mask_url(one) for one in urls)
    scheme, sep, rest = url.partition("://")
    prefix = scheme + sep if sep else ""
    rest = rest if sep else url
    userinfo, at, host = rest.rpartition("@")
    if at:
        user, colon, _ = userinfo.partition(":")
        rest = f"{user}:***@{host}" if colon else rest
    return _SECRET_PARAM.sub(r"\1***", prefix + rest)
