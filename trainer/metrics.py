"""What a run reports: one JSON line per step in OUT/metrics.jsonl, TensorBoard when it is
installed, and a progress line a person reads. MFU is counted as nanoGPT counts it (the model's
FLOPs per token, trainer/model.py) against the chip's dense bf16 peak, looked up by name."""

import json
import math
import sys
from pathlib import Path

import torch

# dense bf16 tensor-core peaks from the vendors' datasheets; the first name found in the device's
# name wins, so the variants come before the family
PEAK_BF16_FLOPS = [
    ("GH200", 989e12), ("H200", 989e12), ("H100 PCIe", 756e12), ("H100 NVL", 835e12),
    ("H100", 989e12), ("H800", 989e12), ("B200", 2250e12), ("B100", 1750e12),
    ("A100", 312e12), ("A800", 312e12), ("L40S", 362e12), ("L4", 121e12), ("A10", 125e12),
    ("V100", 125e12), ("T4", 65e12),
]


def peak_flops(device: torch.device) -> float | None:
    """bf16 FLOP/s of one device, or None (a CPU, an unknown card): MFU is then not reported."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((flops for key, flops in PEAK_BF16_FLOPS if key in name), None)


class MetricsLog:
    """metrics.jsonl on the main process. A resumed run first drops the rows after its checkpoint
    (a killed run may have logged steps it never saved), so the file reads as one run."""

    def __init__(self, out, start_step: int, enabled: bool, tensorboard: bool):
        self.enabled = enabled
        self.tb = None
        if not enabled:
            return
        path = Path(out) / "metrics.jsonl"
        kept = []
        if start_step > 0 and path.exists():
            for line in path.read_text().splitlines():
                try:
                    row = json.loads(line)
                except ValueError:  # the last line of a killed run may be cut short
                    continue
                if row.get("step", math.inf) <= start_step:
                    kept.append(line + "\n")
        tmp = path.with_name(".metrics.jsonl.tmp")
        tmp.write_text("".join(kept))
        tmp.replace(path)
        self.file = open(path, "a")
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
                self.tb = SummaryWriter(str(Path(out) / "tensorboard"), purge_step=start_step + 1)
            except ImportError:
                print("note: tensorboard is not installed; metrics go to metrics.jsonl only", file=sys.stderr)

    def write(self, row: dict):
        if not self.enabled:
            return
        self.file.write(json.dumps(row) + "\n")
        self.file.flush()
        if self.tb is not None:
            for key, value in row.items():
                if key != "step" and isinstance(value, (int, float)):
                    self.tb.add_scalar(key, value, row["step"])

    def close(self):
        if self.enabled:
            self.file.close()
            if self.tb is not None:
                self.tb.close()


def _si(x: float) -> str:
    return f"{x / 1e6:.2f}M" if x >= 1e6 else f"{x / 1e3:.1f}k" if x >= 1e3 else f"{x:.0f}"


def progress_line(row: dict, max_steps: int) -> str:
    parts = [f"step {row['step']}/{max_steps}", f"loss {row['loss']:.4f}", f"lr {row['lr']:.2e}",
             f"{_si(row['tokens_per_s'])} tok/s"]
    if row.get("mfu") is not None:
        parts.append(f"mfu {100 * row['mfu']:.1f}%")
    parts.append(f"{1000 * row['step_s']:.0f} ms/step")
    if row.get("val_loss") is not None:
        bpb = f" val_bpb {row['val_bpb']:.4f}" if row.get("val_bpb") is not None else ""
        parts.append(f"val_loss {row['val_loss']:.4f}{bpb}")
    return " | ".join(parts)
