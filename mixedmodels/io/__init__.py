"""Input and output: saving and loading fitted models (no pickle) and the bundled data sets."""
