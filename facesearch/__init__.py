"""facesearch: a face search engine for photo collections.

`facesearch.api` is the Python API, `facesearch.cli` the `facesearch` command, `facesearch.config` where a
gallery lives, `facesearch.errors` what can go wrong. Importing this package loads no model.
"""
