"""The `luminary demo` pieces: synthetic jets and a small NumPy DeepSets jet tagger."""
