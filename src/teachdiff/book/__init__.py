"""Helpers of the book's chapters: what the reproduction chapters share (``reproduction``), the
experiment each of them has of its own (``experiments``) and the student versions of the notebooks
(``tools``; its command line is :mod:`teachdiff.cli.book`).
"""
