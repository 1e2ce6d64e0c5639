"""Stage 3: pre-train a GPT-style decoder on the token shards (SPEC "Trainer").

Reads shards by itself with NumPy and needs only torch, numpy, sentencepiece and safetensors, so it
runs on a bare GPU machine; it never imports pipeline/ or tokenizer/.
"""
