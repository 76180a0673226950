"""From a Keras model to deployable files (SavedModel, TFLite, ONNX), run and timed."""
