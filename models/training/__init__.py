"""The training toolkit: the lab where extractors are made, never imported by the engine.

Datasets and their splits (`datasets`), chip caches (`chips`), pair and triplet generators (`generators`), the
tf.data input pipeline (`input_pipeline`), networks and losses (`network`, `losses`, `dlib_port`, `teacher`),
training runs (`train`, `runs`), evaluation and its metrics (`evaluate`, `metrics`), the model card, reports and
plots (`card`, `report`, `plots`), and the export of a trained network to the ONNX graph the engine runs
(`export`). It may use the engine's modules (reading photos, detection, alignment, the extractor runtime); the
engine (`models/` outside this package, `indexer/`, `db/`, `facesearch.api`) never imports it, which
`tests/test_layers.py` holds with import-linter contracts.
"""
