"""Model registry: models, immutable versions, aliases with history, signatures, lineage."""
