"""The language filter stage: our own inference of fastText's lid.176 (``lid176``), the
sampling and the verdict (``langid``), and the stage (``stage``)."""
