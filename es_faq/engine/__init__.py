"""Elasticsearch itself: the one way to build a client (`client`) and the local engine for development
and tests, installed (`provision`) and run (`local`)."""
