#!/usr/bin/env bash
# The device check of issue 18: every CUDA path of the workbench on a real GPU, in one run of
# a few minutes from a fresh checkout.
#
#   bash bench/gpu_check.sh            # figures and logs in $OUT (else ./gpu_check_out)
#
# Python, in this order: $GPU_CHECK_PYTHON if set; .venv if it runs torch and workbench; the
# README's set-up (packaging/bootstrap.sh) when the package index answers (not with
# GPU_CHECK_NO_BOOTSTRAP=1); else the machine's python3 with the checkout on PYTHONPATH and any
# wheels in .whl/ installed to a temp folder (pip --no-index --no-deps).
#
# Steps: pytest -m cuda (tests/core; tests/ui too where pytest-qt is there) with the tests'
# figures taken from the JUnit XML; bench_train_digits.py --device cuda; bench_amp_resnet.py
# (resnet18 on FakeData, float32 / AMP float16 / AMP bfloat16, samples/s, speedup over the CPU);
# torchrun --nproc-per-node 1 on cuda:0, and the engine's DDP parts on nccl under torchrun, that
# checkpoint resumed on the CPU and exported in every format (verified); the window's gauges under Xvfb with a screenshot (where PySide6 is).
# A part that needs a package the machine lacks is SKIPPED(reason), not failed.
#
# Exit 0: all passed; 1: a check failed; 3: no CUDA device here (nothing run); 4: no Python
# with torch and the core's packages. The last line is always `RESULT key=value ...`.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 4
ROOT=$PWD
OUT=${OUT:-$ROOT/gpu_check_out}
mkdir -p "$OUT" || exit 4
LOG=$OUT/gpu_check.log
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")
: >"$LOG"
START=$SECONDS
RESULT=()
FAILED=()

say() { echo "gpu_check: $*" | tee -a "$LOG" >&2; }
add() { RESULT+=("$@"); }
fail() { FAILED+=("$1"); add "$1=FAILED"; say "FAILED: $1: $2"; }
finish() {  # finish EXIT_CODE
  add "failed=${#FAILED[@]}" "seconds=$((SECONDS - START))"
  local line="RESULT ${RESULT[*]}"
  echo "$line" >>"$LOG"
  echo "$line" >"$OUT/result.txt"
  echo "$line"
  rm -rf "$WORK"
  exit "$1"
}
# step NAME SECONDS COMMAND...: run with a time limit; its output goes to $WORK/NAME.log and the main
# log (only 4 files stay in $OUT: gpu_check.log, result.txt, cuda-tests.xml, gauges.png)
step() {
  local name=$1 limit=$2
  shift 2
  say "step $name (at most ${limit}s): $*"
  local t0=$SECONDS rc
  timeout --kill-after=10 "$limit" "$@" >"$WORK/$name.log" 2>&1
  rc=$?
  cat "$WORK/$name.log" >>"$LOG"
  say "step $name: exit $rc after $((SECONDS - t0))s"
  [ "$rc" -eq 124 ] && say "step $name ran past its ${limit}s limit"
  return "$rc"
}
result_of() { grep '^RESULT ' "$1" | tail -n 1 | cut -d' ' -f2-; }  # the key=value part of a bench's RESULT line

# ------------------------------------------------------------------ set-up: which Python
runs_core() { "$1" -c 'import torch, workbench' >/dev/null 2>&1; }
index_answers() {
  local url=${PIP_INDEX_URL:-https://pypi.org/simple}
  python3 - "$url" <<'EOF' >/dev/null 2>&1
import sys, urllib.request
urllib.request.urlopen(sys.argv[1].rstrip("/") + "/pip/", timeout=5)
EOF
}
export PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH}
if [ -n "${GPU_CHECK_PYTHON:-}" ]; then
  PY=$GPU_CHECK_PYTHON SETUP=given
elif [ -x .venv/bin/python ] && runs_core .venv/bin/python; then
  PY=$ROOT/.venv/bin/python SETUP=venv
elif [ -z "${GPU_CHECK_NO_BOOTSTRAP:-}" ] && index_answers \
    && step bootstrap 600 bash packaging/bootstrap.sh && runs_core .venv/bin/python; then
  PY=$ROOT/.venv/bin/python SETUP=bootstrap
else
  PY=$(command -v python3 || echo python3) SETUP=system
  if compgen -G ".whl/*.whl" >/dev/null; then
    say "installing the wheels in .whl/ into $WORK/site (no index, no dependencies)"
    if "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$WORK/site" \
        .whl/*.whl >>"$LOG" 2>&1; then
      export PYTHONPATH=$PYTHONPATH:$WORK/site
      SETUP=system+wheels
    else
      say "the wheels in .whl/ did not install (see $LOG); going on without them"
    fi
  fi
fi
add "setup=$SETUP"
say "python: $PY (set-up: $SETUP); PYTHONPATH=$PYTHONPATH"

# What this Python has: one line of key=value (versions, or 'missing').
"$PY" - >"$WORK/probe" 2>>"$LOG" <<'EOF'
import importlib, sys
out = {"python": "%d.%d.%d" % sys.version_info[:3]}
for name in ("torch", "torchvision", "numpy", "psutil", "sklearn", "onnx", "onnxruntime", "onnxscript",
             "safetensors", "pytest", "pytest_timeout", "hypothesis", "tensorboard", "filelock", "pynvml",
             "PySide6", "pyqtgraph", "pytestqt", "superqt", "optuna", "captum", "matplotlib"):
    try:
        module = importlib.import_module(name)
        out[name] = str(getattr(module, "__version__", "yes")).replace(" ", "_")
    except Exception:
        out[name] = "missing"
if out["torch"] != "missing":
    import torch
    out["cuda"] = "yes" if torch.cuda.is_available() else "no"
    out["torch_cuda"] = str(torch.version.cuda)
    if out["cuda"] == "yes":
        out["gpu"] = torch.cuda.get_device_name(0).replace(" ", "_")
        out["gpu_count"] = str(torch.cuda.device_count())
print(" ".join(f"{k}={v}" for k, v in out.items()))
EOF
probe_rc=$?
PROBE=$(cat "$WORK/probe" 2>/dev/null)
echo "probe: $PROBE" >>"$LOG"
has() { case " $PROBE " in *" $1=missing "*) return 1 ;; *" $1="*) return 0 ;; *) return 1 ;; esac; }
value() { local v=" $PROBE "; v=${v#* "$1"=}; [ "$v" = " $PROBE " ] && return; echo "${v%% *}"; }

if [ "$probe_rc" -ne 0 ] || ! has torch; then
  say "set-up failed: $PY cannot import torch (${PROBE:-it did not run}); give GPU_CHECK_PYTHON a Python with torch, or run bash packaging/bootstrap.sh"
  add "python=$(value python)" "torch=missing"
  finish 4
fi
missing=()
for name in torchvision numpy psutil sklearn pytest; do has "$name" || missing+=("$name"); done
add "python=$(value python)" "torch=$(value torch)" "torch_cuda=$(value torch_cuda)"
if [ ${#missing[@]} -gt 0 ]; then
  say "set-up failed: $PY lacks what the core needs: ${missing[*]}"
  add "missing=$(IFS=,; echo "${missing[*]}")"
  finish 4
fi
if [ "$(value cuda)" != "yes" ]; then
  say "no CUDA device: PyTorch $(value torch) (CUDA $(value torch_cuda)) at $PY sees none (torch.cuda.is_available() is False); nothing was run"
  add "cuda=absent"
  finish 3
fi
add "gpu=$(value gpu)"
optional_missing=()
for name in onnx onnxruntime onnxscript safetensors pytest_timeout pynvml PySide6 pyqtgraph pytestqt; do
  has "$name" || optional_missing+=("$name")
done
[ ${#optional_missing[@]} -gt 0 ] && add "absent=$(IFS=,; echo "${optional_missing[*]}")"
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >>"$LOG" 2>&1
fi

# ------------------------------------------------------------------ 1. pytest -m cuda
QT=no
has PySide6 && has pyqtgraph && has pytestqt && QT=yes
TEST_PATHS=(tests/core)
[ "$QT" = yes ] && TEST_PATHS+=(tests/ui)
if step pytest_cuda 300 "$PY" -m pytest -m cuda -q -rs -p no:cacheprovider -o junit_family=legacy \
    --junitxml="$OUT/cuda-tests.xml" "${TEST_PATHS[@]}"; then :; else fail pytest_cuda "see $LOG"; fi
if [ -f "$OUT/cuda-tests.xml" ]; then
  # counts, and the figures the tests recorded (record_property), one key=value each
  "$PY" - "$OUT/cuda-tests.xml" >"$WORK/junit" 2>>"$LOG" <<'EOF'
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
cases = root.iter("testcase")
n = {"passed": 0, "failed": 0, "skipped": 0}
figures = {}
for case in cases:
    if case.find("failure") is not None or case.find("error") is not None:
        n["failed"] += 1
    elif case.find("skipped") is not None:
        n["skipped"] += 1
    else:
        n["passed"] += 1
    for prop in case.iter("property"):
        if prop.get("name") != "oom_message":
            figures[prop.get("name")] = str(prop.get("value")).replace(" ", "_")
        else:
            print("oom message: " + str(prop.get("value")), file=sys.stderr)
print(" ".join([f"cuda_tests_{k}={v}" for k, v in n.items()] + [f"{k}={v}" for k, v in figures.items()]))
EOF
  read -r -a junit <"$WORK/junit" && add "${junit[@]}"
  case " ${junit[*]:-} " in *" cuda_tests_passed=0 "*) fail cuda_tests "no cuda test passed" ;; esac
  case " ${junit[*]:-} " in *" cuda_tests_skipped=0 "*) ;; *) say "some cuda tests were skipped on a CUDA machine: see $LOG" ;; esac
else
  fail cuda_tests "pytest wrote no $OUT/cuda-tests.xml"
fi

# ------------------------------------------------------------------ 2. benches
if step bench_digits 120 "$PY" bench/bench_train_digits.py --device cuda; then
  read -r -a figures <<<"$(result_of "$WORK/bench_digits.log")"
  add "${figures[@]/#/digits_}"
else fail bench_digits "see $LOG"; fi
if step bench_amp 240 "$PY" bench/bench_amp_resnet.py; then
  read -r -a figures <<<"$(result_of "$WORK/bench_amp.log")"
  add "${figures[@]/#/resnet18_}"
else fail bench_amp "see $LOG"; fi

# ------------------------------------------------------------------ 3. torchrun (nccl on cuda:0), resume on the CPU, exports
# `torchrun --nproc-per-node 1 -m workbench train` is a world of one, which distributed.session
# trains without a process group (like a plain run). So nccl itself is checked by a second
# torchrun process that joins nccl on cuda:0 as session() does and trains the digits CNN with the
# engine's DDP parts (DistributedParallel: DDP wrap, nccl all-reduce of the losses, gather).
PROJ=$WORK/digits.wbproj
cat >"$WORK/nccl_engine.py" <<'EOF'
import sys
import torch
import torch.distributed as dist
from workbench.project import project_file
from workbench.training import distributed, events as ev
from workbench.training.engine import Engine
launch = distributed.read_env()
device, backend, notes = distributed.choose_device("cuda", launch.local_rank)
torch.cuda.set_device(device)
dist.init_process_group(backend, device_id=device)
try:
    par = distributed.DistributedParallel(launch.rank, launch.world_size, device, backend, launch.local_world_size,
                                          notes, 600.0)
    print(par.describe(64), flush=True)
    end = Engine(project_file.load(sys.argv[1]), run_dir=sys.argv[2], parallel=par, device=par.device_name,
                 epochs=2).run()
    print(f"engine under {backend} on {device}: {type(end).__name__} {getattr(end, 'message', '')}", flush=True)
finally:
    dist.destroy_process_group()
sys.exit(0 if isinstance(end, ev.FinishedEvent) else 1)
EOF
if step new_project 60 "$PY" -m workbench new -t digits_cnn -o "$PROJ"; then
  if step torchrun 180 "$PY" -m torch.distributed.run --standalone --nproc-per-node 1 -m workbench train "$PROJ" \
      --device cuda --epochs 2 --out "$WORK/run1"; then
    add "torchrun_cli=ok"
  else fail torchrun_cli "see $LOG"; fi
  if step nccl 180 "$PY" -m torch.distributed.run --standalone --nproc-per-node 1 "$WORK/nccl_engine.py" "$PROJ" \
      "$WORK/ddp"; then
    if grep -q "(nccl on cuda)" "$WORK/nccl.log"; then add "nccl=ok"; else fail nccl "no 'nccl on cuda' line"; fi
    if step resume_cpu 180 "$PY" -m workbench train "$PROJ" --resume "$WORK/ddp/last.ckpt" --device cpu --epochs 3; then
      add "resume_cpu=ok"
    else fail resume_cpu "see $LOG"; fi
    if step export_all 240 "$PY" -m workbench export "$PROJ" --format all -o "$WORK/export" --weights "$WORK/ddp/last.ckpt"; then
      add "cli_exports_verified=$(grep -c 'verification: passed' "$WORK/export_all.log")"
    else fail export_all "see $LOG"; fi
  else fail nccl "see $LOG"; fi
else fail new_project "see $LOG"; fi

# ------------------------------------------------------------------ 4. the window's gauges under Xvfb
if [ "$QT" != yes ]; then
  add "window=SKIPPED(no_PySide6/pyqtgraph/pytest-qt_in_$(basename "$PY"))"
elif ! command -v xvfb-run >/dev/null; then
  add "window=SKIPPED(no_xvfb-run)"
elif step window 180 xvfb-run -a "$PY" packaging/screenshot.py -o "$OUT/gauges.png" --size 1280x800 \
    --project digits_cnn --train 2; then
  if [ -s "$OUT/gauges.png" ]; then add "window=ok" "screenshot=gauges.png"; else fail window "no screenshot"; fi
else fail window "see $LOG"; fi

if [ ${#FAILED[@]} -gt 0 ]; then
  say "failed: ${FAILED[*]}"
  finish 1
fi
finish 0
