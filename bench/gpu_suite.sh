#!/usr/bin/env bash
# The GPU suite: everything this library measures or tests only on a CUDA machine, in one call, all results under one folder.
#
#   here (once):       python bench/gpu_wheels.py          # fastai, fastcore, nbdev, this package... as wheels into .whl/
#   on the GPU:        bash bench/gpu_suite.sh [OUT]        # device tool: carry ['.whl'], OUT defaults to $OUT or bench/results/gpu
#
# Steps (each logged to OUT/<step>.log; a failed step is recorded in OUT/summary.md and the others still run):
#   env       nvidia-smi, torch / CUDA / GPU names
#   cuda      the notebook cells flagged `cuda` (nbdev-test --flags cuda) of the notebooks that have them
#   train     a short real training through `train_covid_learner` with fp16 + channels-last on the bundled NIH sample
#   speed     bench/speed.py: library vs plain PyTorch loop vs model-step ceiling, real JPEGs (the sample, repeated), workers = cores
#   predict   saved-model prediction on the GPU (`predict_images`, PyTorch, float16 vs float32): images/s at batch 64 and 256, peak memory, largest difference
#   memory    peak GPU memory of a training step per backbone (batch 32, 224 px, fp16, channels-last)
#   ddp       with 2+ GPUs: 2-process DDP training on NCCL (tests/test_distributed.py), else skipped with the reason
#   pytest    the whole pytest suite on the GPU machine (browser tests skip there)
# STEPS="env train" bash bench/gpu_suite.sh runs only some; GPU_SUITE_ALLOW_CPU=1 lets it run (small) without a GPU, to check it.
set -uo pipefail
cd "$(dirname "$0")/.."
OUTDIR="${1:-${OUT:-bench/results/gpu}}"
mkdir -p "$OUTDIR"
STEPS="${STEPS:-env cuda train speed predict memory ddp pytest}"
export PYTHONUNBUFFERED=1 COVID_FASTAI_CACHE="$(mktemp -d)"
PY="${PYTHON:-python3}"
if ! $PY -c 'import fastai, covid_fastai' 2>/dev/null && ls .whl/*.whl >/dev/null 2>&1; then   # carried wheels (bench/gpu_wheels.py)
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH} PATH=/tmp/site/bin:$PATH
fi
if ! $PY -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  [ "${GPU_SUITE_ALLOW_CPU:-0}" = 1 ] || { echo "no CUDA device: the GPU suite needs one (GPU_SUITE_ALLOW_CPU=1 to check the script on a CPU)" >&2; exit 1; }
  SMALL=1
else SMALL=0; fi
NGPU=$($PY -c 'import torch; print(torch.cuda.device_count())')
NCPU=$(nproc)
SUMMARY="$OUTDIR/summary.md"
echo "# GPU suite, $(date -u +%Y-%m-%dT%H:%MZ)" > "$SUMMARY"; echo >> "$SUMMARY"
step() {   # step NAME COMMAND...: run, log, time, record
  local name=$1; shift
  case " $STEPS " in *" $name "*) ;; *) return 0;; esac
  local t0=$SECONDS; echo "== $name" >&2
  ( "$@" ) > "$OUTDIR/$name.log" 2>&1; local rc=$?
  echo "- \`$name\`: $([ $rc = 0 ] && echo ok || echo "FAILED (exit $rc)") in $((SECONDS - t0)) s" >> "$SUMMARY"
  [ $rc = 0 ] || tail -5 "$OUTDIR/$name.log" | sed 's/^/    /' >> "$SUMMARY"
}

# A corpus of real JPEGs that travels with the tree: the bundled NIH sample (480 images), repeated by hard links
DATA="$(mktemp -d)/xrays"
$PY - "$DATA" "$SMALL" <<'PY'
import sys, os, csv
from pathlib import Path
from covid_fastai.datasets import sample_xrays
src, out = sample_xrays(), Path(sys.argv[1])
rows = list(csv.DictReader(open(src/'labels.csv')))
reps = 2 if sys.argv[2] == "1" else 25   # 12,000 files (960 to check the script on a CPU)
with open(out.parent/'labels.csv', 'w', newline='') as f:
    w = csv.writer(f); w.writerow(['path', 'label', 'patient'])
    for k in range(reps):
        for r in rows:
            p = Path(r['path']); dst = out/p.parent/f"{p.stem}_r{k}{p.suffix}"
            dst.parent.mkdir(parents=True, exist_ok=True)
            if not dst.exists(): os.link(src/p, dst)
            w.writerow([str(Path('xrays')/p.parent/dst.name), r['label'], f"{r['patient']}_{k}"])
PY

env_step() {
  nvidia-smi || true
  $PY -c 'import torch, platform; print("torch", torch.__version__, "cuda", torch.version.cuda, "python", platform.python_version()); [print(i, torch.cuda.get_device_name(i)) for i in range(torch.cuda.device_count())]'
  $PY -c 'import fastai, covid_fastai; print("fastai", fastai.__version__, "covid_fastai", covid_fastai.__version__)'
}
cuda_step() {
  local nbs; nbs=$(grep -l '#| cuda' nbs/*.ipynb)
  for nb in $nbs; do echo "-- $nb"; nbdev-test --flags cuda "$nb" || return 1; done
}
train_step() {
  $PY - "$DATA" "$OUTDIR" "$SMALL" <<'PY'
import sys, json, time, torch
from pathlib import Path
from covid_fastai.train import train_covid_learner
from covid_fastai.learner import EpochLines
data, out, small = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == '1'
t = time.time()
learn = train_covid_learner(data, arch='efficientnet_lite0', epochs=1 if small else 3, size=64 if small else 224, bs=32,
                            fp16='auto', channels_last='auto', cbs=[EpochLines()])
cbs = [type(c).__name__ for c in learn.cbs]
res = dict(seconds=round(time.time() - t, 1), device=str(learn.dls.device), callbacks=cbs,
           memory_format=str(next(learn.model.parameters()).is_contiguous(memory_format=torch.channels_last)),
           valid=[float(v) for v in learn.recorder.values[-1]], gpu=torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu',
           peak_gpu_mb=round(torch.cuda.max_memory_allocated() / 2**20) if torch.cuda.is_available() else None)
print(json.dumps(res, indent=1))
(out/'train.json').write_text(json.dumps(res, indent=1))
assert small or 'MixedPrecision' in ' '.join(cbs), cbs
PY
}
speed_step() {
  if [ "$SMALL" = 1 ]; then $PY bench/speed.py --data "$(dirname "$DATA")" --archs mobilenet --batches 3 --skip 1 --rounds 1 --workers 2 --size 64 --out "$OUTDIR"
  else $PY bench/speed.py --data "$(dirname "$DATA")" --archs mobilenet,efficientnet_lite0,resnet18 --workers "$NCPU" --out "$OUTDIR"; fi
}
predict_step() {
  $PY - "$DATA" "$OUTDIR" "$SMALL" <<'PY'
import sys, json, time, tempfile, torch
from pathlib import Path
from dataclasses import replace
from safetensors.torch import save_model
from covid_fastai.models import create_covid_model, get_arch
from covid_fastai.card import ModelCard
from covid_fastai.outputs import file_sha256
from covid_fastai.inference import load_covid_model, HALF_TOL
from covid_fastai.predict import predict_images
data, out, small = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == '1'
files = sorted(str(f) for f in data.rglob('*.jpg'))
mean, std = get_arch('efficientnet_lite0').stats
m = create_covid_model('efficientnet_lite0', n_out=2, pretrained=True)   # ImageNet weights, new head: speed does not depend on what it learned
tmp = Path(tempfile.mkdtemp()); save_model(m, str(tmp/'model.safetensors'))
card = ModelCard(['No_findings', 'Pneumonia'], size=256, mean=list(mean), std=list(std), arch='efficientnet_lite0', preprocess='clahe', tta=False)
(tmp/'model.json').write_text(replace(card, weights_sha256=file_sha256(tmp/'model.safetensors')).to_json())
cuda = torch.cuda.is_available()
rows, ref = [], None
for half in (False, True):
    pred = load_covid_model(tmp, backend='auto', half=half)
    for bs in ((8,) if small else (64, 256)):
        predict_images(pred, files[:2 * bs], out=None, bs=bs, progress=False)   # warm-up
        if cuda: torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
        t = time.perf_counter(); df = predict_images(pred, files, out=None, bs=bs, progress=False); dt = time.perf_counter() - t
        p = df[card.classes].to_numpy()
        if ref is None: ref = p
        rows.append(dict(half=half, bs=bs, device=str(next(pred.model.parameters()).device), backend=pred.backend, images=len(files),
                         images_per_s=round(len(files) / dt, 1), peak_gpu_mb=round(torch.cuda.max_memory_allocated() / 2**20) if cuda else None,
                         max_diff_vs_fp32=float(abs(p - ref).max())))
        print(rows[-1], flush=True)
res = dict(gpu=torch.cuda.get_device_name() if cuda else 'cpu', half_tol=HALF_TOL, workers='default (one per core)', rows=rows)
(out/'predict_gpu.json').write_text(json.dumps(res, indent=1))
assert all(r['max_diff_vs_fp32'] <= HALF_TOL for r in rows), rows
PY
}
memory_step() {
  $PY - "$OUTDIR" "$SMALL" <<'PY'
import sys, json, torch, torch.nn as nn
from pathlib import Path
from covid_fastai.models import ARCHS, create_covid_model
out, small = Path(sys.argv[1]), sys.argv[2] == '1'
dev = 'cuda' if torch.cuda.is_available() else 'cpu'
rows = []
for arch in (['efficientnet_lite0'] if small else list(ARCHS)):
    try:
        m = create_covid_model(arch, n_out=3, pretrained=False).to(dev).to(memory_format=torch.channels_last)
        opt = torch.optim.Adam(m.parameters())
        x = torch.randn(32 if not small else 4, 3, 224 if not small else 64, 224 if not small else 64, device=dev).to(memory_format=torch.channels_last)
        y = torch.randint(0, 3, (x.shape[0],), device=dev)
        if dev == 'cuda': torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats()
        for _ in range(2):
            with torch.autocast(dev, dtype=torch.float16 if dev == 'cuda' else torch.bfloat16):
                loss = nn.functional.cross_entropy(m(x), y)
            loss.backward(); opt.step(); opt.zero_grad()
        peak = torch.cuda.max_memory_allocated() / 2**20 if dev == 'cuda' else None
        rows.append(dict(arch=arch, peak_gpu_mb=round(peak) if peak else None)); print(rows[-1], flush=True)
        del m, opt
    except Exception as e: rows.append(dict(arch=arch, error=str(e)[:200])); print(rows[-1], flush=True)
(out/'memory.json').write_text(json.dumps(dict(device=torch.cuda.get_device_name() if dev == 'cuda' else 'cpu', bs=32, size=224, rows=rows), indent=1))
PY
}
ddp_step() {
  if [ "$NGPU" -lt 2 ] && [ "$SMALL" = 0 ]; then echo "skipped: $NGPU GPU (NCCL needs one GPU per process); the gloo test runs in CI"; return 0; fi
  $PY -m pytest -q -p no:cacheprovider tests/test_distributed.py
}
pytest_step() { $PY -m pytest -q -p no:cacheprovider -x tests; }

step env env_step
step cuda cuda_step
step train train_step
step speed speed_step
step predict predict_step
step memory memory_step
step ddp ddp_step
step pytest pytest_step
cat "$SUMMARY"
# The device tool brings back at most 8 files: under it ($OUT), pack the results into one archive beside summary.md
if [ -n "${OUT:-}" ] && [ "$(cd "$OUTDIR" && pwd)" = "$(cd "$OUT" && pwd)" ]; then
  tar czf /tmp/gpu_suite.tgz -C "$OUTDIR" . && find "$OUTDIR" -mindepth 1 ! -name summary.md -delete && mv /tmp/gpu_suite.tgz "$OUTDIR"/
fi
