"""``python -m pipeline.report --corpus DIR [--tokens DIR]``: the corpus datasheet."""
import sys

from pipeline.report.datasheet import main

sys.exit(main())
