"""Versioned datasets: manifests of content hashes, readers for ROOT, Parquet and HDF5."""
