"""What is kept on disk: the checkpoint format, run-folder guards, training-data cards, the model zoo,
and :func:`~.resolve.load_method` (a file, a run folder or a zoo name, loaded as a method).
"""
