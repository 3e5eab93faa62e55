"""Evaluation: metrics, statistics, the paper's reproduction and folder scoring.
"""
