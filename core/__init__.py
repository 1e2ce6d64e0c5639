"""What every package of the project shares: the error a user can fix and how a command ends
(``core.errors``), files written whole and their checksums (``core.files``), the token shard
format (``core.shards``), and the HTML/PNG pieces of its reports (``core.render``).

It needs only the standard library and NumPy, because the trainer imports it on a GPU machine
that has torch but neither pyspark nor the corpus pipeline.
"""
