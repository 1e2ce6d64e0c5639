"""The pieces of a report page: a figure as an inline PNG, and how the project's reports name
their software. Pages carry their pictures inside (base64), so one HTML file is the report."""
from __future__ import annotations

import base64
import io
import platform
import re
from importlib import metadata

PROJECT = "corpusforge"


def png(fig, *, dpi: float | None = None, tight_bbox: bool = False) -> str:
    """A matplotlib figure as an ``<img>`` with a base64 PNG, the figure closed after.

    No Software/date metadata: the same data gives the same report bytes.
    """
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    kwargs = {"dpi": dpi} if dpi else {}
    if tight_bbox:
        kwargs["bbox_inches"] = "tight"
    else:
        fig.tight_layout()
    fig.savefig(buf, format="png", metadata={"Software": None}, **kwargs)
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="plot" src="data:image/png;base64,{data}">'


def package_versions(names: list[str] | None = None) -> dict[str, str]:
    """Installed versions of ``names``, or of every dependency the project declares: what
    decides an output, recorded beside it."""
    missing = "not installed"
    if names is None:
        names = ["pyspark", "pyarrow", "numpy", "pandas", "matplotlib"]
        try:
            reqs = metadata.requires(PROJECT) or []
            names = [re.split(r"[\s\[<>=!~;]", r, maxsplit=1)[0] for r in reqs
                     if "extra ==" not in r]
        except metadata.PackageNotFoundError:
            pass
        names = [PROJECT] + sorted(set(names), key=str.lower)
    else:
        missing = None
    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            if missing:
                out[name] = missing
    return out
