#!/usr/bin/env python
"""`covid-fastai predict` at corpus scale: peak memory against the number of files, and an interrupted run resumed.

Builds folders of `--sizes` file links (default 2,000 and 100,000) to the real X-rays of a local xray3 copy (hard links,
repeated and renamed, in class folders; the source is only read), saves an `efficientnet_lite0` model (ImageNet weights,
new head: memory and speed do not depend on what it learned; `--size` px, CLAHE, as the defaults train), then:

1. runs `covid-fastai predict MODEL FOLDER --out preds.csv` on each folder, in a process of its own, and records its peak
   resident memory (`wait4`'s `ru_maxrss`), wall time and images/s;
2. on the smallest folder, stops a run with Ctrl-C (SIGINT) once half of its rows are written, marks the kept rows of the
   hidden partial file, runs it again with `--resume`, and checks that the marked rows come back unchanged (none predicted
   again), that the others equal an uninterrupted run's, and that the CSV has every file once, in input order.

Writes bench/results/predict_scale.{json,md}. A benchmark, not a test: nothing here is timed in the test suite.

    python bench/predict_scale.py --src PATH/TO/xray3 [--sizes 2000,100000] [--size 256] [--work /tmp/covid-bench-predict-scale]
"""
import argparse, json, os, platform, signal, subprocess, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from corpus import make_corpus

RESULTS = Path(__file__).parent/'results'

def save_model(dest, size):
    "A saved model folder: efficientnet_lite0 with ImageNet weights and a 3-class head, `size` px, CLAHE"
    from dataclasses import replace
    from safetensors.torch import save_model as st_save
    from covid_fastai.models import create_covid_model, get_arch
    from covid_fastai.card import ModelCard
    from covid_fastai.outputs import file_sha256
    dest.mkdir(parents=True, exist_ok=True)
    mean, std = get_arch('efficientnet_lite0').stats
    st_save(create_covid_model('efficientnet_lite0', n_out=3, pretrained=True), str(dest/'model.safetensors'))
    card = ModelCard(['COVID-19', 'No_findings', 'Pneumonia'], size=size, mean=list(mean), std=list(std), arch='efficientnet_lite0',
                     preprocess='clahe', tta=False)
    (dest/'model.json').write_text(replace(card, weights_sha256=file_sha256(dest/'model.safetensors')).to_json())
    return dest

def predict(model, folder, out, *extra, stop_at=None):
    "Run `covid-fastai predict`; `(returncode, peak RSS MB, seconds, stderr)`; with `stop_at`, SIGINT once the partial file has that many rows"
    cmd = ['covid-fastai', 'predict', str(model), str(folder), '--out', str(out), *map(str, extra)]
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    part, sent = out.with_name(f'.{out.name}.partial'), False
    while True:   # (reaped here, with its resource usage: `Popen.poll` would reap it without)
        pid, status, ru = os.wait4(p.pid, os.WNOHANG)
        if pid: break
        time.sleep(0.2)
        if stop_at is not None and not sent and part.exists() and sum(1 for _ in open(part, 'rb')) - 1 >= stop_at:
            p.send_signal(signal.SIGINT); sent = True
    err = p.stderr.read()
    return os.waitstatus_to_exitcode(status), round(ru.ru_maxrss / 1024), time.perf_counter() - t, err

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--src', default=str(Path(__file__).resolve().parents[2]/'shared'/'data'/'xray3'))
    ap.add_argument('--sizes', default='2000,100000')
    ap.add_argument('--size', type=int, default=256, help='input size of the model (px)')
    ap.add_argument('--work', default='/tmp/covid-bench-predict-scale')
    a = ap.parse_args()
    import pandas as pd, numpy as np
    work = Path(a.work); work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault('COVID_FASTAI_CACHE', str(work/'cache'))   # (its ONNX file is made by the first run, then reused)
    model = save_model(work/f'model_{a.size}', a.size)
    from covid_fastai.inference import load_covid_model
    load_covid_model(model, backend='auto')   # its ONNX file made now, so that no measured run pays for the export
    sizes = sorted(int(s) for s in a.sizes.split(','))
    rows = []
    for n in sizes:
        folder = work/f'files_{n}'/'corpus'
        make_corpus(a.src, folder, n)
        out = work/f'preds_{n}.csv'; out.unlink(missing_ok=True)
        rc, rss, dt, err = predict(model, folder, out)
        if rc: sys.exit(f"predict on {n} files failed:\n{err[-2000:]}")
        rows.append(dict(files=n, peak_rss_mb=rss, seconds=round(dt, 1), images_per_s=round(n / dt, 1), rows=len(pd.read_csv(out))))
        print(rows[-1], flush=True)
    # resume after an interrupt at half, on the smallest folder
    n = sizes[0]; folder, full = work/f'files_{n}'/'corpus', pd.read_csv(work/f'preds_{n}.csv')
    out = work/f'resumed_{n}.csv'; out.unlink(missing_ok=True)
    rc, rss, dt, err = predict(model, folder, out, stop_at=n // 2)
    part = out.with_name(f'.{out.name}.partial')
    if not part.exists(): sys.exit(f"The run on {n} files ended (exit {rc}) before it could be stopped half way: use more files (rows are written {32 * 8} at a time)")
    kept = pd.read_csv(part, float_precision='round_trip')
    kept['probability'] = -1.0   # a mark no prediction can write: a row predicted again would lose it
    kept.to_csv(part, index=False)
    rc2, rss2, dt2, err2 = predict(model, folder, out, '--resume')
    if rc2: sys.exit(f"--resume failed:\n{err2[-2000:]}")
    res = pd.read_csv(out)
    k = len(kept)
    resume = dict(files=n, interrupted_exit=rc, rows_kept=k, stopped_message=[l for l in err.splitlines() if 'rows kept' in l][:1],
                  resumed_seconds=round(dt2, 1), rows=len(res), same_files_in_order=list(res.file) == list(full.file),
                  kept_rows_not_predicted_again=bool((res.probability[:k] == -1).all()),
                  rest_equal_to_uninterrupted=float(np.abs(res.iloc[k:, 3:].to_numpy() - full.iloc[k:, 3:].to_numpy()).max()) if k < n else 0.0)
    print(resume, flush=True)
    import torch, onnxruntime
    from covid_fastai.inference import default_workers
    from demo import processor
    out = dict(machine=dict(processor=processor(), cores=os.cpu_count(), python=platform.python_version(),
                            torch=torch.__version__, onnxruntime=onnxruntime.__version__),
               settings=dict(model='efficientnet_lite0', size=a.size, preprocess='clahe', backend='auto (onnxruntime on a CPU)', bs=32,
                             workers=default_workers()),
               runs=rows, resume=resume,
               rss_growth=round(rows[-1]['peak_rss_mb'] / rows[0]['peak_rss_mb'] - 1, 3))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS/'predict_scale.json').write_text(json.dumps(out, indent=1))
    md = [f"`covid-fastai predict` of a saved efficientnet_lite0 ({a.size} px, CLAHE, ONNX Runtime on the CPU, batch 32, "
          f"{default_workers()} preprocessing threads) on folders of file links to real X-rays, each run a process of its own; "
          f"{out['machine']['processor']}, {os.cpu_count()} cores.", '',
          '| files | peak RSS (MB) | wall (s) | images/s |', '|---:|---:|---:|---:|']
    md += [f"| {r['files']:,} | {r['peak_rss_mb']} | {r['seconds']} | {r['images_per_s']} |" for r in rows]
    md += ['', f"Peak memory from {rows[0]['files']:,} to {rows[-1]['files']:,} files: {out['rss_growth']:+.1%} (target: within 10%).", '',
           f"Stopped with Ctrl-C after {resume['rows_kept']:,} of {n:,} rows, then `--resume`: "
           f"{'no kept row predicted again' if resume['kept_rows_not_predicted_again'] else 'KEPT ROWS PREDICTED AGAIN'}; "
           f"{resume['rows']:,} rows, {'every file once, in input order' if resume['same_files_in_order'] else 'FILES DIFFER'}; "
           f"the rest within {resume['rest_equal_to_uninterrupted']:.1e} of an uninterrupted run; the resumed run took {resume['resumed_seconds']} s."]
    (RESULTS/'predict_scale.md').write_text('\n'.join(md) + '\n')
    print('\n'.join(md))

if __name__ == '__main__': main()
