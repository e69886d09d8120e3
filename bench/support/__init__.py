"""What the benchmarks share: figures, child processes, the two bus paths."""
