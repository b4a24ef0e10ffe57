"""Experiments: the paper's grid (definition, running, reports and plots), the benchmark
(inference, input, training) and its report.
"""
