"""Training (optional extra `[train]`: torch + transformers), from the bge-small-zh-v1.5 fp32 weights:
the cross-encoder that decides (`cross_encoder`, on labelled pairs) and a fine-tuned embedder
(`embedder`), both exported to ONNX. Nothing here runs at serving time."""
