"""Tokenizer stage: a SentencePiece vocabulary trained on the corpus, and token shards.

``core.shards`` needs only NumPy, so a trainer on a GPU machine can read shards without
SentencePiece, pyarrow or Spark; the other modules are imported only where they are used.
"""
