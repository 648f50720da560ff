"""Design stage: the data frame turned into y, X, weights, offsets and one random-effects term
per bar, checked and complete-case, ready for the engine."""
