"""Elasticsearch itself: the one way to build a client (`client`) and the local engine for development
and tests (`local`)."""
