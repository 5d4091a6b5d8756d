#!/usr/bin/env python
"""Data-loading throughput of `covid_dls` on a large corpus, with and without the downscaled cache.

Builds a corpus like NIH ChestX-ray14 (1024 px PNGs) by upscaling the real X-rays of ../shared/data/xray3 and
repeating them until there are at least `--n` images (the data folder itself is only read), then measures
images/s through the training DataLoader (decode, resize, augmentation, no model) reading the originals, and
reading a 256 px cache made by `resize_xrays`. Writes bench/results/data_loading.{json,md}.

    python bench/data_loading.py --src ../shared/data/xray3 --work /tmp/covid-bench-data
"""
import argparse, json, os, platform, time
from pathlib import Path
import numpy as np, pandas as pd, torch
from PIL import Image
from fastcore.parallel import parallel
from covid_fastai.images import get_xray_files, load_xray
from covid_fastai.data import table_layout, Layout, split_layout
from covid_fastai.dataloaders import covid_dls
from covid_fastai.prep import resize_xrays

def make_corpus(src, dest, n, size):
    "Upscaled PNG copies of the images in `src`, repeated until there are `n`; resumes if partly done"
    files = sorted(get_xray_files(src))
    jobs = [(files[i % len(files)], dest/files[i % len(files)].parent.name/f"{i:05d}_{files[i % len(files)].stem}.png") for i in range(n)]
    def _one(job):
        f, out = job
        if out.exists(): return
        out.parent.mkdir(parents=True, exist_ok=True)
        im = load_xray(f).convert('L')
        s = size / max(im.size)
        im.resize((round(im.width*s), round(im.height*s)), Image.Resampling.LANCZOS).save(out)
    parallel(_one, jobs, n_workers=os.cpu_count(), threadpool=True, progress=True)
    return pd.DataFrame(dict(path=[str(o.relative_to(dest)) for _, o in jobs], label=[o.parent.name for _, o in jobs]))

def throughput(lay, size, bs, workers, valid_pct, max_batches=None):
    dls = covid_dls(split_layout(lay, 'random', valid_pct=valid_pct), size=size, bs=bs, num_workers=workers)
    n, t0 = 0, time.perf_counter()
    for i, (xb, yb) in enumerate(dls.train):
        n += len(xb)
        if max_batches and i + 1 >= max_batches: break
    dt = time.perf_counter() - t0
    return dict(images=n, seconds=round(dt, 1), images_per_s=round(n/dt, 1))

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--src', default='../shared/data/xray3'); p.add_argument('--work', default='/tmp/covid-bench-data')
    p.add_argument('--n', type=int, default=10_000); p.add_argument('--orig-size', type=int, default=1024)
    p.add_argument('--cache-size', type=int, default=256); p.add_argument('--size', type=int, default=224)
    p.add_argument('--bs', type=int, default=64); p.add_argument('--workers', type=int, default=os.cpu_count())
    p.add_argument('--valid-pct', type=float, default=0.1)
    p.add_argument('--out', default=str(Path(__file__).parent/'results'/'data_loading'))
    a = p.parse_args()
    work = Path(a.work); corpus = work/f'corpus{a.orig_size}'; cache = work/f'cache{a.cache_size}'
    t0 = time.perf_counter(); df = make_corpus(Path(a.src), corpus, a.n, a.orig_size); t_corpus = time.perf_counter() - t0
    lay = table_layout(df, path=corpus, patient_col=None, label_delim='')
    sizes = [f.stat().st_size for f in lay.df.fname]
    t0 = time.perf_counter(); res = resize_xrays(corpus, cache, size=a.cache_size, files=lay.df.fname.tolist()); t_cache = time.perf_counter() - t0
    n_resized = int((res.result == 'done').sum())
    cached = Layout(cache, lay.df.assign(fname=res.dest.values))
    t0 = time.perf_counter(); from covid_fastai.images import inspect_images; inspect_images(cached.df.fname.tolist()); t_check = time.perf_counter() - t0
    rows = []
    for name, l in ((f'originals ({a.orig_size} px PNG)', lay), (f'cache ({a.cache_size} px, resize_xrays)', cached)):
        r = throughput(l, a.size, a.bs, a.workers, a.valid_pct)
        rows.append(dict(source=name, **r)); print(rows[-1])
    out = dict(machine=dict(cpus=os.cpu_count(), platform=platform.platform(), torch=torch.__version__),
               settings=dict(n_images=len(lay.df), orig_size=a.orig_size, mean_file_kb=round(np.mean(sizes)/1024), cache_size=a.cache_size,
                             size=a.size, bs=a.bs, workers=a.workers, aug='xray preset (rotate, flip, zoom, lighting)'),
               one_time=dict(make_corpus_s=round(t_corpus, 1), resize_images_s=round(t_cache, 1), resized=n_resized, check_cached_s=round(t_check, 1)),
               results=rows, speedup=round(rows[1]['images_per_s']/rows[0]['images_per_s'], 2))
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out + '.json').write_text(json.dumps(out, indent=2))
    md = [f"# Data loading throughput", '',
          f"{len(lay.df)} chest X-rays (real images of xray3, upscaled to {a.orig_size} px PNG like NIH ChestX-ray14, mean {out['settings']['mean_file_kb']} KB), "
          f"training DataLoader of `covid_dls` at {a.size} px, bs {a.bs}, {a.workers} workers, `xray` augmentation, no model; "
          f"{os.cpu_count()} CPU cores, torch {torch.__version__}.", '',
          '| source | images | seconds | images/s |', '|---|---|---|---|']
    md += [f"| {r['source']} | {r['images']} | {r['seconds']} | {r['images_per_s']} |" for r in rows]
    md += ['', f"Cache speed-up: {out['speedup']}x. One-time cost of the cache: {out['one_time']['resize_images_s']} s for `resize_xrays` to write "
           f"{n_resized} files (a re-run skips finished files); `inspect_images` over the cache (the check `covid_dls` runs before training): "
           f"{out['one_time']['check_cached_s']} s. The training loader sees {1 - a.valid_pct:.0%} of the images (the rest is validation), "
           f"less the last incomplete batch."]
    Path(a.out + '.md').write_text('\n'.join(md) + '\n')
    print('\n'.join(md))
