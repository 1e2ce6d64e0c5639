"""Draw a run's curves: python -m trainer.report OUT [--png FILE]

Reads OUT/metrics.jsonl and writes OUT/report.png: training and validation loss by step, and the
learning rate below on the same axis, so a loss spike can be lined up with the schedule.
matplotlib is imported here only, so training never needs it.
"""

import json
from pathlib import Path

from core.errors import ArgumentParser, UsageError, run_command


def read_metrics(out) -> list[dict]:
    path = Path(out) / "metrics.jsonl"
    try:
        lines = path.read_text().splitlines()
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror}") from None
    rows = []
    for line in lines:
        try:
            rows.append(json.loads(line))
        except ValueError:  # a killed run's last line
            continue
    if not rows:
        raise UsageError(f"{path} has no steps yet")
    return rows


def draw(rows: list[dict], png: Path, title: str) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    steps = [r["step"] for r in rows]
    evals = [r for r in rows if r.get("val_loss") is not None]
    fig, (loss_ax, lr_ax) = plt.subplots(2, 1, figsize=(8, 6), sharex=True, height_ratios=[3, 1])
    loss_ax.plot(steps, [r["loss"] for r in rows], linewidth=0.8, alpha=0.7, label="train loss")
    if evals:
        loss_ax.plot([r["step"] for r in evals], [r["val_loss"] for r in evals], "o-", label="val loss")
    loss_ax.set_ylabel("loss (nats/token)")
    loss_ax.set_title(title)
    loss_ax.grid(alpha=0.3)
    loss_ax.legend()
    lr_ax.plot(steps, [r["lr"] for r in rows], color="tab:green")
    lr_ax.set_ylabel("learning rate")
    lr_ax.set_xlabel("step")
    lr_ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return png


def main(argv=None):
    parser = ArgumentParser(prog="python -m trainer.report", description="Draw a run's loss and learning-rate curves.")
    parser.add_argument("out", help="a trainer.run output folder")
    parser.add_argument("--png", help="where to write the figure (default OUT/report.png)")
    args = parser.parse_args(argv)
    rows = read_metrics(args.out)
    last = rows[-1]
    title = f"{Path(args.out).resolve().name}: step {last['step']}, loss {last['loss']:.3f}"
    evals = [r for r in rows if r.get("val_loss") is not None]
    if evals:
        title += f", val {evals[-1]['val_loss']:.3f}"
    png = draw(rows, Path(args.png) if args.png else Path(args.out) / "report.png", title)
    print(f"wrote {png}")


if __name__ == "__main__":
    run_command(main)
