"""Process-level concerns: BLAS threads, the allocator, executors for parallel replicates."""
