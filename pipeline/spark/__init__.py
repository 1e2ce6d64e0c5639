"""Where the corpus stages meet Spark: the session (``session``) and the one stage runner
(``runner``). The only package of ``pipeline`` besides each stage's own ``spark_plan`` module
that imports pyspark."""
