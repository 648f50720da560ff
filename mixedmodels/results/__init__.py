"""Results stage: fitted-model objects (lmer, glmer, lm) that derive everything the user asks for
from the optimum, delegating tests to ``inference`` and printing to ``report``."""
