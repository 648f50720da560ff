"""Report stage: R-style number formatting, lme4/lmerTest summaries, broom.mixed tables and
(optionally, with matplotlib) plots."""
