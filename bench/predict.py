#!/usr/bin/env python
"""Prediction throughput of a saved model on real X-rays: the library's path against the one it replaced, a plain script, and the ceiling.

A saved `efficientnet_lite0` model (ImageNet weights, new head: speed does not depend on what it learned; 256 px, CLAHE, as
the defaults train) predicts `--n` real X-rays (xray3, repeated to reach `--n`) with test-time augmentation off, batch 32,
in one process. The measurements take turns in `--rounds` rounds (a shared machine's speed drifts); medians reported:

- `library`: what `covid-fastai predict`, `evaluate` and `serve` do: the saved folder loaded with `backend='auto'`, so on
  a CPU onnxruntime runs the model (its ONNX file made once per weights in the cache), images read and preprocessed by
  `Predictor.workers` threads (default: one per core) up to two batches ahead of the model;
- `library_torch`: the PyTorch path as it is now (`backend='torch'`, Python's default): channels-last, inference mode, the
  same threads; `library_torch_no_threads`: the same with `workers=0`;
- `before`: the library as it was before this work (`--before`, the commit before issue 32: images read on the calling
  thread, three channels, PyTorch in the default memory format), its own code taken from git (`git archive`) and run in a
  process of its own each round (`--one-before`), on the same saved folder and files;
- `plain_threads_onnx`: a plain script: the library's `preprocess` function on a `concurrent.futures` thread pool feeding
  onnxruntime batch by batch;
- `model_only`: the PyTorch model channels-last on a batch already in memory (the ceiling of the PyTorch paths),
  and `onnx_model_only` the same for onnxruntime;
- `preprocess_only`: reading and preprocessing alone, on the calling thread.

All return the same probabilities (checked against the path before on 64 images). Writes bench/results/predict.json and
predict.md.

    python bench/predict.py --data DATA [--n 512] [--rounds 3] [--before COMMIT]
"""
import argparse, json, os, platform, sys, tempfile, time
from pathlib import Path
import numpy as np

RESULTS = Path(__file__).parent/'results'
BEFORE = 'f6086cd'   # the last commit before issue 32 changed the prediction path

def before_library(commit:str, dest:Path) -> Path:
    "The `covid_fastai` package of `commit`, unpacked under `dest` (the folder to put first on `sys.path`)"
    import subprocess
    root = Path(__file__).resolve().parents[1]
    arc = subprocess.run(['git', '-C', str(root), 'archive', commit, 'covid_fastai'], capture_output=True, check=True).stdout
    subprocess.run(['tar', '-x', '-C', str(dest)], input=arc, check=True)
    return dest

def one_before(a):
    "In a child: the library of `--before` (first on `sys.path`) predicts the files of `--files`; emits images/s and the first 64 images' probabilities"
    sys.path.insert(0, a.lib)
    import covid_fastai.inference as inf
    assert Path(inf.__file__).is_relative_to(a.lib), inf.__file__
    from _child import emit
    files = Path(a.files).read_text().splitlines()
    pred = inf.load_covid_model(a.model)
    pred.predict_proba(files[:a.bs], bs=a.bs)   # warm-up, as the other paths get
    t = time.perf_counter(); probs = pred.predict_proba(files, bs=a.bs); dt = time.perf_counter() - t
    emit(dict(rate=len(files) / dt, probs=probs[:64].tolist(), module=str(Path(inf.__file__).relative_to(a.lib))))

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--data', default=str(Path(__file__).resolve().parents[2]/'shared'/'data'/'xray3'))
    ap.add_argument('--n', type=int, default=512)
    ap.add_argument('--rounds', type=int, default=3)
    ap.add_argument('--bs', type=int, default=32)
    ap.add_argument('--before', default=BEFORE, help='commit of the library whose prediction path is the baseline')
    ap.add_argument('--one-before', action='store_true', help=argparse.SUPPRESS)
    ap.add_argument('--lib', help=argparse.SUPPRESS); ap.add_argument('--model', help=argparse.SUPPRESS); ap.add_argument('--files', help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one_before: return one_before(a)
    import pandas as pd, torch, onnxruntime as ort
    from concurrent.futures import ThreadPoolExecutor
    from covid_fastai.models import create_covid_model, get_arch
    from covid_fastai.card import ModelCard
    from covid_fastai.inference import Predictor, load_covid_model, preprocess, default_workers
    from covid_fastai.core import probs_from_logits
    lab = pd.read_csv(Path(a.data)/'labels.csv')
    files = [str(Path(a.data)/p) for p in lab.path]
    files = (files * (a.n // len(files) + 1))[:a.n]
    spec = get_arch('efficientnet_lite0')
    mean, std = spec.stats
    card = ModelCard(['COVID-19', 'No_findings', 'Pneumonia'], size=256, mean=list(mean), std=list(std), arch='efficientnet_lite0',
                     preprocess='clahe', tta=False)
    model = create_covid_model('efficientnet_lite0', n_out=3, pretrained=True).eval()
    tmp = Path(tempfile.mkdtemp(prefix='covid-bench-predict-'))
    os.environ.setdefault('COVID_FASTAI_CACHE', str(tmp/'cache'))   # (a fresh ONNX cache: its file is made here, once)
    from safetensors.torch import save_model
    from dataclasses import replace
    from covid_fastai.outputs import file_sha256
    (tmp/'model').mkdir()
    save_model(model, str(tmp/'model'/'model.safetensors'))
    (tmp/'model'/'model.json').write_text(replace(card, weights_sha256=file_sha256(tmp/'model'/'model.safetensors')).to_json())
    t = time.perf_counter(); auto = load_covid_model(tmp/'model', backend='auto'); first_load = time.perf_counter() - t
    t = time.perf_counter(); load_covid_model(tmp/'model', backend='auto'); again_load = time.perf_counter() - t
    lib = load_covid_model(tmp/'model', backend='torch')
    model = lib.model
    from _child import run_child
    (tmp/'files.txt').write_text('\n'.join(files))
    old = before_library(a.before, Path(tempfile.mkdtemp(prefix='covid-bench-before-')))
    child = [sys.executable, __file__, '--one-before', '--lib', str(old), '--model', str(tmp/'model'), '--files', str(tmp/'files.txt'), '--bs', str(a.bs)]
    before_probs = {}
    def before(fs):   # timed in its own process: `rate` replaces the parent's clock
        r = run_child(child, 'the path before'); before_probs.setdefault('p', np.array(r['probs'], np.float32)); return r['rate']
    sess = auto.run
    prep = lambda chunk: preprocess(chunk, card.size, card.mean, card.std, None, card.preprocess)
    nw = default_workers()
    def plain_threads_onnx(fs):
        out = []
        with ThreadPoolExecutor(nw) as ex:
            one = lambda f: prep([f])[0]
            for i in range(0, len(fs), a.bs): out.append(probs_from_logits(sess(np.stack(list(ex.map(one, fs[i:i+a.bs]))))))
        return np.concatenate(out)
    xb = prep(files[:a.bs])
    xb_cl = torch.from_numpy(xb).contiguous(memory_format=torch.channels_last)
    def model_only(fs):
        with torch.inference_mode():
            for i in range(0, len(fs), a.bs): model(xb_cl)
    def onnx_model_only(fs):
        for i in range(0, len(fs), a.bs): sess(xb)
    def preprocess_only(fs):
        for i in range(0, len(fs), a.bs): prep(fs[i:i+a.bs])
    lib0 = lib.with_card(); lib0.workers = 0
    runs = dict(library=lambda fs: auto.predict_proba(fs, bs=a.bs), library_torch=lambda fs: lib.predict_proba(fs, bs=a.bs),
                library_torch_no_threads=lambda fs: lib0.predict_proba(fs, bs=a.bs), before=before,
                plain_threads_onnx=plain_threads_onnx, model_only=model_only, onnx_model_only=onnx_model_only, preprocess_only=preprocess_only)
    # same probabilities
    for k, f in runs.items():
        if k != 'before': f(files[:2 * a.bs])   # warm-up (the path before warms up in its own process)
    rates = {k: [] for k in runs}
    for r in range(a.rounds):
        for k, f in runs.items():
            t = time.perf_counter(); rate = f(files); rates[k].append(rate if k == 'before' else len(files) / (time.perf_counter() - t))
            print(r, k, round(rates[k][-1], 1), flush=True)
    med = {k: round(float(np.median(v)), 1) for k, v in rates.items()}
    ref = before_probs['p']   # the path before's probabilities of the first 64 files
    diffs = {k: float(np.abs(runs[k](files[:64]) - ref).max()) for k in ('library', 'library_torch', 'library_torch_no_threads', 'plain_threads_onnx')}
    import subprocess, re
    try: proc = re.search(r'Model name:\s*(.+)', subprocess.run(['lscpu'], capture_output=True, text=True).stdout).group(1).strip()
    except Exception: proc = platform.processor() or platform.machine()
    res = dict(env=dict(processor=proc, cpus=os.cpu_count(), torch_threads=torch.get_num_threads(), workers=nw, onnxruntime=ort.__version__,
                        torch=torch.__version__, n=len(files), bs=a.bs, size=card.size, rounds=a.rounds, data=Path(a.data).name,
                        date=time.strftime('%Y-%m-%d'), before_commit=a.before),
               backend=auto.backend, first_load_s=round(first_load, 1), load_again_s=round(again_load, 1), images_per_s=med, rounds={k: [round(x, 1) for x in v] for k, v in rates.items()}, max_prob_diff_vs_before=diffs)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS/'predict.json').write_text(json.dumps(res, indent=2) + '\n')
    e = res['env']
    what = dict(library=f"the library's default (`backend='auto'`: {auto.backend}, threads reading ahead)",
                library_torch='the PyTorch path now (channels-last, threads reading ahead)', library_torch_no_threads='the same, `workers=0`',
                before=f'the path before (the library at {a.before}, run from its own code: calling thread reads, PyTorch in the default memory format)',
                plain_threads_onnx='plain script: `preprocess` on a thread pool feeding onnxruntime', model_only='PyTorch model alone on a batch in memory (ceiling)',
                onnx_model_only='onnxruntime alone on a batch in memory (ceiling)', preprocess_only='reading and preprocessing alone, one thread')
    md = ["# Prediction throughput", '',
          f"{e['n']} real X-rays ({e['data']}, repeated), `efficientnet_lite0` at {e['size']} px with CLAHE, batch {e['bs']}, test-time augmentation off; "
          f"{e['processor']}, {e['cpus']} CPUs, {e['torch_threads']} PyTorch threads, {e['workers']} reading threads; median of {e['rounds']} rounds "
          f"in which the paths take turns; torch {e['torch']}, onnxruntime {e['onnxruntime']}; {e['date']}. Command: `python bench/predict.py --data DATA --n {e['n']} --rounds {e['rounds']} --before {e['before_commit']}`.", '',
          '| path | images/s | rounds | vs before |', '|---|---|---|---|']
    for k, v in med.items():
        md.append(f"| {what[k]} | {v} | {' / '.join(str(x) for x in res['rounds'][k])} | {v / med['before']:.2f}x |")
    md += ['', f"Loading the saved folder with `backend='auto'` took {res['first_load_s']} s the first time (the ONNX export and its check) "
           f"and {res['load_again_s']} s after (the cached file reused).", '',
           f"Against the plain script: the library's default runs at {med['library'] / med['plain_threads_onnx']:.2f}x its images/s; "
           f"against the path before, {med['library'] / med['before']:.2f}x.", '',
           'Largest probability difference from the path before, on 64 images: ' + ', '.join(f"{k} {v:.1e}" for k, v in diffs.items()) + '.', '']
    (RESULTS/'predict.md').write_text('\n'.join(md))
    print('\n'.join(md))

if __name__ == '__main__': main()
