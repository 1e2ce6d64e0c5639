"""The clean stage: normalisation and the Gopher, C4 and FineWeb rules (``rules``), and the
stage itself (``stage``)."""
