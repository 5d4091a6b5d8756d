"""CPU inference latency and throughput: PyTorch eager vs onnxruntime, 1 and 2 threads, at 224 px.

Single-image latency: median and p95 of the model call on one preprocessed image, after warm-up; end to end: the same
through `Predictor.predict_proba` from a JPEG file (read, resize, normalize, run, softmax). Batch throughput: images per
second at batch size 32. Writes bench/results/latency.json and latency.md.

    python bench/latency.py [--runs 200] [--image path.jpg]

Target (issue 6): median single-image latency <= 15 ms for efficientnet_lite0, 2 threads, onnxruntime.
"""
import argparse, json, os, platform, sys, tempfile, time
from pathlib import Path
import numpy as np

RESULTS = Path(__file__).parent/'results'

def _stats(ts):
    ts = np.asarray(ts) * 1000
    return dict(median_ms=round(float(np.median(ts)), 2), p95_ms=round(float(np.percentile(ts, 95)), 2), mean_ms=round(float(ts.mean()), 2))

def _time(fn, runs, warmup):
    for _ in range(warmup): fn()
    ts = []
    for _ in range(runs):
        t = time.perf_counter(); fn(); ts.append(time.perf_counter() - t)
    return ts

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--runs', type=int, default=200)
    ap.add_argument('--warmup', type=int, default=20)
    ap.add_argument('--batch', type=int, default=32)
    ap.add_argument('--size', type=int, default=224)
    ap.add_argument('--archs', default='efficientnet_lite0,mobilenet')
    ap.add_argument('--threads', default='1,2')
    ap.add_argument('--image', default=None, help='a JPEG for the end-to-end timing (default: an xray3 image, else a synthetic one)')
    a = ap.parse_args()
    import torch, onnxruntime as ort
    from covid_fastai.models import create_covid_model, get_arch
    from covid_fastai.inference import Predictor, export_onnx, load_covid_model, _torch_run

    img = a.image
    if img is None:
        x3 = Path(__file__).resolve().parents[2]/'shared'/'data'/'xray3'/'COVID-19'
        img = next(iter(sorted(x3.glob('*.jpg'))), None) if x3.exists() else None
    if img is None:
        from PIL import Image
        img = Path(tempfile.mkdtemp())/'x.jpg'
        Image.fromarray((np.random.default_rng(0).random((512, 512)) * 255).astype(np.uint8)).save(img)
    tmp = Path(tempfile.mkdtemp())
    rows = []
    x1 = np.random.default_rng(0).normal(size=(1, 3, a.size, a.size)).astype(np.float32)
    xb = np.random.default_rng(1).normal(size=(a.batch, 3, a.size, a.size)).astype(np.float32)
    for arch in a.archs.split(','):
        spec = get_arch(arch)
        pretrained = spec.name == 'efficientnet_lite0'  # the only weights available offline; latency does not depend on them
        model = create_covid_model(arch, n_out=3, pretrained=pretrained).eval()
        mean, std = spec.stats
        meta = dict(arch=arch, classes=['COVID-19', 'No_findings', 'Pneumonia'], n_out=3, size=a.size, mean=list(mean), std=list(std))
        tp = Predictor(_torch_run(model), meta, model=model)
        onnx_fn = export_onnx(tp, tmp/f'{arch}.onnx')
        for th in map(int, a.threads.split(',')):
            torch.set_num_threads(th)
            op = load_covid_model(onnx_fn, threads=th)
            for backend, pred in (('pytorch', tp), ('onnxruntime', op)):
                single = _stats(_time(lambda: pred.run(x1), a.runs, a.warmup))
                e2e = _stats(_time(lambda: pred.predict_proba([img]), max(a.runs // 4, 20), 5))
                tb = _time(lambda: pred.run(xb), 5, 1)
                rows.append(dict(arch=arch, backend=backend, threads=th, size=a.size, single_median_ms=single['median_ms'],
                                 single_p95_ms=single['p95_ms'], e2e_median_ms=e2e['median_ms'],
                                 batch=a.batch, batch_img_per_s=round(a.batch / float(np.median(tb)), 1)))
                print(rows[-1], flush=True)
    env = dict(python=platform.python_version(), torch=torch.__version__, onnxruntime=ort.__version__, cpus=os.cpu_count(),
               processor=platform.processor() or platform.machine(), image=str(img), runs=a.runs, warmup=a.warmup)
    lite = [r for r in rows if r['arch'] == 'efficientnet_lite0' and r['backend'] == 'onnxruntime' and r['threads'] == 2]
    target = dict(metric='efficientnet_lite0 onnxruntime 2 threads single-image median (ms)', limit=15.0,
                  value=lite[0]['single_median_ms'] if lite else None, met=bool(lite and lite[0]['single_median_ms'] <= 15.0))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS/'latency.json').write_text(json.dumps(dict(env=env, target=target, rows=rows), indent=2))
    hdr = ['arch', 'backend', 'threads', 'single median ms', 'single p95 ms', 'end-to-end median ms', f'batch {a.batch} img/s']
    md = [f"# CPU inference latency ({a.size} px)", '',
          f"Model call on one preprocessed image ({a.runs} runs after {a.warmup} warm-up), end to end from a JPEG "
          f"(read, resize, normalize, run, softmax) and batch throughput. {env['cpus']} CPUs, torch {env['torch']}, onnxruntime {env['onnxruntime']}.", '',
          '| ' + ' | '.join(hdr) + ' |', '|' + '---|' * len(hdr)]
    md += [f"| {r['arch']} | {r['backend']} | {r['threads']} | {r['single_median_ms']} | {r['single_p95_ms']} | {r['e2e_median_ms']} | {r['batch_img_per_s']} |" for r in rows]
    md += ['', f"Target: {target['metric']} <= {target['limit']}: **{target['value']} ms, {'met' if target['met'] else 'NOT met'}**."]
    (RESULTS/'latency.md').write_text('\n'.join(md) + '\n')
    print('\n'.join(md))

if __name__ == '__main__': main()
