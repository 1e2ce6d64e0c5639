"""The dedup stage: text normalisation, shingles, MinHash and LSH bands, boilerplate lines
(``minhash``), its Spark plan (``spark_plan``) and the stage (``stage``); ``reference`` holds the
plain, slow versions the tests and benchmarks hold the fast ones to."""
