"""What every corpus stage shares: the document columns (``schema``), settings (``config``), the
stage contract and the list of stages (``contract``), the stage folder (``stagedir``) and the
command line (``cli``). No Spark here."""
