"""Engine stage: the profiled LMM deviance, PIRLS and the Laplace/AGQ GLMM deviance, families,
starting values and the optimizer that minimises them."""
