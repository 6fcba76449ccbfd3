"""es-faq: FAQ retrieval for Chinese customer service on Elasticsearch."""

__version__ = "0.1.0"
