"""Datasets: easy-VQA from its PyPI package, and the package's own procedural scenes."""
