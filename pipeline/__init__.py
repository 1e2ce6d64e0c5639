"""The corpus stages, one package each, in the order a document passes through them:
``ingest`` → ``clean`` → ``langfilter`` → ``dedup`` → ``screen``; then ``report`` (the
datasheet). ``stage`` is what they share (the contract, settings, stage folders, command line),
``spark`` the one runner that executes any of them, ``corpus`` all of them in one application.
Rules are plain Python; only ``spark/`` and each stage's ``spark_*`` module import pyspark."""
