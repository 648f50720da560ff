"""Teaching and study design: the null model's ICC and design effect, pooling comparisons, power."""
