"""storyterm's training pipeline: ``python -m training.prepare_data``, ``training.train``, ``training.evaluate``.

The prompt format (special tokens, ``<BOS> <genre>`` header) comes from :mod:`storyterm.engine.prompt`, so a model
trained here sees at inference exactly the layout it was trained on.
"""
