"""Model files: manifests and provisioning into the cache (`manifest`), loading ONNX models with their
tokenizers (`onnx`), quantization, export, and the Maven Central download (`maven`)."""
