"""Code beside the pipeline, not in it: building the demo corpus, training the shipped toxicity
model. Tests and benchmarks use it; a corpus run never imports it."""
