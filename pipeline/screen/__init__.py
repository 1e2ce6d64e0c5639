"""The bias screen stage: PII (``pii``), word lists (``lexicons``), the toxicity model
(``toxicity``), the policy that decides (``policy``), the bias report (``bias_report``, computed
by ``spark_report``) and the stage (``stage``)."""
