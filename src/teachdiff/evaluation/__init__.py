"""Evaluation: metrics, statistics, the paper's reproduction and folder scoring
(:func:`teachdiff.evaluation.evaluate.evaluate_folders`, what ``teachdiff evaluate`` runs).
"""
