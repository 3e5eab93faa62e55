"""Helpers of the book's chapters: the shared code of the reproduction chapters and the student
versions of the notebooks.
"""
