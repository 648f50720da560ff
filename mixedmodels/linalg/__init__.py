"""Linear algebra of the engine: crossproduct blocks of [Z X y] and their blocked Cholesky factor."""
