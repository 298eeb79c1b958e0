"""Export time per format: ``workbench.export`` (verification off) against calling the torch
API directly, on the digits CNN template and resnet18 (3x64x64), side by side in one run.

Both sides write the same model with the same call arguments (trace with check_trace=False,
ONNX dynamo with a dynamic batch and external_data=False, torch.export with a dynamic batch)
to the same folder; runs alternate raw / workbench, and the fastest of at least ``--repeat``
runs is reported after one warm-up each (other processes on a shared machine only ever add
time; cheap formats get more runs). The workbench side adds eval mode and its restore, the
temporary file, fsync, the rename and the captured log. Goal: ratio <= 1.2. The
verification each format runs (fresh process, two batch sizes) is timed separately.
Python source has no torch API to compare with: its time is shown alone.
Last line: RESULT name=value ... (``--quick``: the digits CNN, one timed run per side and no
extra rounds, a smoke run whose RESULT says quick=1).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from workbench.model import build  # noqa: E402
from workbench.export import exporter as export  # noqa: E402
from workbench.project import templates  # noqa: E402
from workbench.export.verify import FreshProcess  # noqa: E402

MAX_ROUNDS = 30
FORMATS = ("state_dict", "safetensors", "torchscript", "onnx", "pt2", "python")


def raw_writer(fmt: str, model, x):
    """The plain torch call a user would make for each format (quiet, like the workbench)."""
    batch = ({0: torch.export.Dim("batch")},)
    if fmt == "state_dict":
        return lambda p: torch.save(model.state_dict(), p)
    if fmt == "safetensors":
        from safetensors.torch import save_file

        return lambda p: save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(p))
    if fmt == "torchscript":
        return lambda p: torch.jit.save(torch.jit.trace(model, (x,), check_trace=False), str(p))
    if fmt == "onnx":
        return lambda p: torch.onnx.export(model, (x,), str(p), dynamo=True, opset_version=18,
                                           dynamic_shapes=batch, external_data=False)
    if fmt == "pt2":
        return lambda p: torch.export.save(torch.export.export(model, (x,), dynamic_shapes=batch), str(p))
    return None


def synced(write):
    """The torch call plus the fsync a durable write needs (what the workbench's rename waits for)."""
    def run(p):
        write(p)
        with open(p, "rb+") as fh:
            os.fsync(fh.fileno())
        fd = os.open(p.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return run


def timed(fn) -> float:
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start


def bench_model(name: str, spec, repeat: int, folder: Path, max_rounds: int = MAX_ROUNDS) -> list[dict]:
    torch.manual_seed(0)
    model = build.build_model(spec).eval()
    x = build.example_input(spec, export.EXPORT_BATCH)
    quiet = export.ExportOptions(verify=False, name=name)
    rows = []
    with FreshProcess() as fresh:
        for fmt in FORMATS:
            suffix = export.FORMATS[fmt].suffix
            raw = raw_writer(fmt, model, x)
            ours = lambda: export.export(model, spec, fmt, folder / f"wb_{name}{suffix}", quiet)  # noqa: E731
            raw_times, sync_times, our_times = [], [], []
            spent, i = 0.0, 0
            # the first round warms everything up and is dropped; cheap formats get more rounds
            while i <= repeat or (spent < 2.0 and i <= max_rounds):
                if raw is not None:
                    t = timed(lambda: raw(folder / f"raw_{name}{suffix}"))
                    raw_times.append(t) if i else None
                    t = timed(lambda: synced(raw)(folder / f"sync_{name}{suffix}"))
                    sync_times.append(t) if i else None
                t = timed(ours)
                our_times.append(t) if i else None
                spent += t
                i += 1
            verified = export.export(model, spec, fmt, folder / f"v_{name}{suffix}", fresh=fresh)
            rows.append({"model": name, "format": fmt, "raw": min(raw_times) if raw_times else None,
                         "sync": min(sync_times) if sync_times else None, "rounds": i - 1,
                         "ours": min(our_times), "verify": verified.verification.seconds,
                         "passed": verified.verification.passed, "max_abs": verified.verification.max_abs})
            print(f"  {name} {fmt}: done", file=sys.stderr, flush=True)
    return rows


def _r(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def ms(t: float | None) -> str:
    return "n/a" if t is None else f"{t * 1000:9.1f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per side (after a warm-up)")
    parser.add_argument("--models", default="digits_cnn,resnet18", help="comma-separated: digits_cnn,resnet18")
    parser.add_argument("--quick", action="store_true",
                        help="the digits CNN, one run per side: a smoke run, not a measurement")
    args = parser.parse_args()
    if args.quick:
        args.models, args.repeat = "digits_cnn", 1
    torch.set_num_threads(min(2, torch.get_num_threads()))
    specs = {"digits_cnn": templates.load("digits_cnn").model,
             "resnet18": templates.load("resnet18_transfer").model}
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
        for name in args.models.split(","):
            rows += bench_model(name, specs[name], args.repeat, Path(tmp), 1 if args.quick else MAX_ROUNDS)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; fastest of >= {args.repeat} runs per side")
    print(f"{'model':11} {'format':12} {'torch API':>12} {'+ fsync':>12} {'workbench':>12} {'ratio':>6} "
          f"{'vs +fsync':>9} {'verify (extra)':>15}  check")
    results = []
    for r in rows:
        ratio = r["ours"] / r["raw"] if r["raw"] else None
        ratio_sync = r["ours"] / r["sync"] if r["sync"] else None
        print(f"{r['model']:11} {r['format']:12} {ms(r['raw']):>12} {ms(r['sync']):>12} {ms(r['ours']):>12} "
              f"{_r(ratio):>6} {_r(ratio_sync):>9} {ms(r['verify']):>15}  "
              f"{'passed' if r['passed'] else 'FAILED'} (max abs {r['max_abs']:.2g}, {r['rounds']} rounds)")
        key = f"{r['model']}_{r['format']}"
        if ratio is not None:
            results.append(f"{key}_ratio={ratio:.3f} {key}_ratio_vs_fsynced={ratio_sync:.3f}")
        results.append(f"{key}_verify_s={r['verify']:.3f}")
    ratios = [r["ours"] / r["raw"] for r in rows if r["raw"]]
    synced_ratios = [r["ours"] / r["sync"] for r in rows if r["sync"]]
    print(f"ratio to the bare torch call: worst {max(ratios):.2f}; to the torch call plus fsync: worst "
          f"{max(synced_ratios):.2f} (goal <= 1.2). Small files pay a few ms of fsync for a durable rename.")
    print("RESULT " + " ".join(results) + f" worst_ratio={max(ratios):.3f}"
          f" worst_ratio_vs_fsynced={max(synced_ratios):.3f}" + (" quick=1" if args.quick else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
