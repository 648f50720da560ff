"""lmer and glmer on Dask data frames: crossproducts and PIRLS passes summed over partitions."""
