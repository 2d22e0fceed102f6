"""Demo traffic: a deterministic simulator of a baseline and an optimised fraud scorer."""
