"""The query stages, one module each: normalize -> rewrite -> correct -> segment -> embed -> retrieve
-> fuse -> rerank -> decide, composed by `pipeline.Searcher`. Indexing reuses the analysis stages.
Nothing here imports the knowledge-base tools, evaluation, training or the shells (tests/test_imports.py)."""
