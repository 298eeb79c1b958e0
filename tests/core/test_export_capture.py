"""Capture of exporter chatter is per thread: an export in one thread keeps its own prints,
warnings and log records, while another thread (training, say) prints, warns and logs to the
real terminal as if no export were running."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import warnings
from pathlib import Path

from workbench.export.capture import captured, warning_names

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent('''
    import json, logging, sys, threading, time, warnings
    import torch
    from workbench.export import exporter as export
    from workbench.model import build
    from workbench.model.spec import LayerSpec as L, ModelSpec

    spec = ModelSpec((6,), [L("fc1", "Linear", {"out_features": 8}), L("act", "ReLU"),
                            L("fc2", "Linear", {"out_features": 3})])
    model = build.build_model(spec)
    out = sys.argv[1]
    log, done, count = [], threading.Event(), [0]
    stdout, showwarning = sys.stdout, warnings.showwarning
    loggers = {name: (logging.getLogger(name).handlers[:], logging.getLogger(name).propagate)
               for name in ("torch", "onnx", "onnxscript", "onnx_ir")}

    def training():
        i = 0
        while not done.is_set() or i < 20:
            print(f"train print {i}", flush=True)
            warnings.warn(f"train warning {i}", UserWarning)
            logging.getLogger("torch.train").warning("train log %d", i)
            i += 1
            time.sleep(0.005)
        count[0] = i

    def exporting():
        try:
            export.export(model, spec, "torchscript", out + "/m.pt", log=log.append)
            export.export(model, spec, "onnx", out + "/m.onnx", log=log.append)
        finally:
            done.set()

    threads = [threading.Thread(target=training), threading.Thread(target=exporting)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    restored = (sys.stdout is stdout and warnings.showwarning is showwarning
                and all(type(f[1]).__module__ != "workbench.export.capture" for f in warnings.filters)
                and all((logging.getLogger(name).handlers, logging.getLogger(name).propagate) == before
                        for name, before in loggers.items()))
    with open(out + "/result.json", "w") as fh:
        json.dump({"log": log, "count": count[0], "restored": restored}, fh)
''')


def test_a_thread_printing_and_warning_during_an_export_keeps_its_output(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("PYTHONWARNINGS", None)
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True,
                          timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "result.json").read_text())
    n = result["count"]
    assert n >= 20
    printed = [ln for ln in proc.stdout.splitlines() if ln.startswith("train print")]
    assert printed == [f"train print {i}" for i in range(n)]  # every line, once, on the real stdout
    for i in range(n):
        assert f"UserWarning: train warning {i}" in proc.stderr
        assert f"train log {i}\n" in proc.stderr
    exported = result["log"]
    assert not [ln for ln in exported if "train" in ln], exported
    assert any("[torch.onnx]" in ln for ln in exported)  # the exporter's own stdout lines
    assert len([ln for ln in exported if "FutureWarning" in ln and "torch.jit.trace` is deprecated" in ln]) == 1
    assert "[torch.onnx]" not in proc.stdout + proc.stderr and "FutureWarning" not in proc.stderr
    assert result["restored"]  # stdout, warning hooks and filters, logger handlers as they were


def test_two_threads_capturing_at_once_each_get_their_own_lines(capsys):
    lines = {"a": [], "b": []}
    barrier = threading.Barrier(2)

    def job(name):
        with captured(lines[name].append):
            barrier.wait()
            for i in range(50):
                print(f"{name} {i}")
                warnings.warn(f"{name} says", UserWarning)
            barrier.wait()

    threads = [threading.Thread(target=job, args=(k,)) for k in lines]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print("after")
    for name, got in lines.items():
        assert got[:50] == [f"{name} {i}" for i in range(50)]
        assert warning_names(got, "UserWarning") == [f"warning: UserWarning: {name} says (x50)"]
    assert capsys.readouterr().out == "after\n"


def test_a_nested_capture_and_printing_from_the_callback(capsys):
    outer: list[str] = []

    def noisy(line):  # a log callback that prints must not loop back into the capture
        outer.append(line)
        print(f"callback saw {line}")

    with captured(noisy):
        print("one")
        inner: list[str] = []
        with captured(inner.append):
            print("two")
        print("three")
    assert outer == ["one", "three"] and inner == ["two"]
    assert capsys.readouterr().out == "callback saw one\ncallback saw three\n"
