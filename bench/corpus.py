#!/usr/bin/env python
"""The large-corpus path at 100,000 images: wall time and peak memory of each step before training starts.

Builds a corpus of `--n` images (default 100,000) out of the real X-rays of a local xray3 copy by hard links (copies where
links are not possible), repeated and renamed, in class folders (the source is only read). Then, each step in a process of its
own (so its peak resident memory is its own):

1. the pre-training image check (`checked_layout`: every file decoded once, with its perceptual hash), remembering each result;
2. the same check again over the unchanged corpus (results read back by path, size, modification time; target <= 10 s);
3. making the 256 px cache (`resize_xrays`), then again (every copy up to date: skipped);
4. building the DataLoaders from the cache (`covid_dls`: split, class-balanced sampling);
5. the first training batch through `efficientnet_lite0` (forward, backward, step).

Writes bench/results/corpus.{json,md}.

    python bench/corpus.py --src PATH/TO/xray3 [--n 100000] [--work /tmp/covid-bench-corpus]
"""
import argparse, json, os, platform, resource, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from _child import emit, run_child

RESULTS = Path(__file__).parent/'results'

def make_corpus(src, dest, n):
    "`n` links to the images of `src` in class folders under `dest` (resumes); the table of files and labels"
    import pandas as pd
    lab = pd.read_csv(Path(src)/'labels.csv')
    rows = []
    for i in range(n):
        r = lab.iloc[i % len(lab)]
        out = dest/r.label/f"{i:06d}_{Path(r.path).name}"
        if not out.exists():
            out.parent.mkdir(parents=True, exist_ok=True)
            try: os.link(Path(src)/r.path, out)
            except OSError: import shutil; shutil.copy(Path(src)/r.path, out)
        rows.append((str(out.relative_to(dest)), r.label, f"{r.patient}-{i // len(lab)}"))
    df = pd.DataFrame(rows, columns=['path', 'label', 'patient'])
    df.to_csv(dest.parent/'corpus.csv', index=False)
    return df

def _peak_mb(): return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)

def child(step, work, n):
    from covid_fastai.data import read_layout
    corpus, cache = work/'corpus', work/'cache256'
    t0 = time.perf_counter()
    lay = read_layout(work/'corpus.csv', path=corpus, check_files=False)
    t_read = time.perf_counter() - t0
    t0 = time.perf_counter()
    if step in ('check', 'check_again'):
        from covid_fastai.check import checked_layout
        out = checked_layout(lay, cache=work/'checks.csv')
        extra = dict(readable=int(len(out.df)))
    elif step in ('cache', 'cache_again'):
        from covid_fastai.prep import resize_xrays
        res = resize_xrays(corpus, cache, size=256, files=lay.df.fname.tolist())
        extra = {k: int(v) for k, v in res.result.value_counts().items()}
    elif step == 'dls':
        from covid_fastai.prep import cached_layout
        from covid_fastai.data import split_layout
        from covid_fastai.dataloaders import covid_dls
        cl = split_layout(cached_layout(lay, cache, 256), valid_pct=0.1)
        dls = covid_dls(cl, size=224, bs=64, stats=([0.5]*3, [0.5]*3))
        extra = dict(train=len(dls.train_ds), valid=len(dls.valid_ds))
    elif step == 'first_batch':
        from covid_fastai.prep import cached_layout
        from covid_fastai.data import split_layout
        from covid_fastai.dataloaders import covid_dls
        from covid_fastai.learner import covid_learner
        cl = split_layout(cached_layout(lay, cache, 256), valid_pct=0.1)
        dls = covid_dls(cl, size=224, bs=64, stats=([0.5]*3, [0.5]*3))
        t_dls = time.perf_counter() - t0
        learn = covid_learner(dls, 'efficientnet_lite0')
        t1 = time.perf_counter()
        xb, yb = dls.one_batch()
        learn.opt = learn.opt or learn.create_opt() or learn.opt
        loss = learn.loss_func(learn.model(xb), yb); loss.backward(); learn.opt.step(); learn.opt.zero_grad()
        extra = dict(dls_s=round(t_dls, 1), batch_s=round(time.perf_counter() - t1, 1), loss=round(float(loss), 3))
    emit(dict(step=step, seconds=round(time.perf_counter() - t0, 1), read_table_s=round(t_read, 1), peak_rss_mb=_peak_mb(), **extra))

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--src', required=False); ap.add_argument('--n', type=int, default=100_000)
    ap.add_argument('--work', default='/tmp/covid-bench-corpus'); ap.add_argument('--one', default=None)
    a = ap.parse_args()
    work = Path(a.work)
    if a.one: return child(a.one, work, a.n)
    t0 = time.perf_counter(); df = make_corpus(Path(a.src), work/'corpus', a.n); t_make = time.perf_counter() - t0
    steps = ['check', 'check_again', 'cache', 'cache_again', 'dls', 'first_batch']
    res = {s: run_child([sys.executable, __file__, '--one', s, '--work', str(work), '--n', str(a.n)], s) for s in steps}
    out = dict(images=len(df), classes=df.label.value_counts().to_dict(), corpus_links_s=round(t_make, 1), steps=res,
               machine=f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
               target_second_check_s=10, second_check_met=res['check_again']['seconds'] <= 10)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS/'corpus.json').write_text(json.dumps(out, indent=2))
    names = dict(check='image check (decode every file once, perceptual hash)', check_again='image check again (unchanged corpus, remembered)',
                 cache='256 px cache (`resize_xrays`)', cache_again='256 px cache again (all up to date)', dls='DataLoaders from the cache (`covid_dls`)',
                 first_batch='DataLoaders + first training batch (`efficientnet_lite0`, bs 64, 224 px)')
    md = ['# A corpus of {:,} images'.format(len(df)), '',
          f"`python bench/corpus.py --src <xray3> --n {a.n}`: {len(df):,} files linked from the 905 real X-rays of xray3 (512 px JPEGs), "
          f"{out['machine']}; each step in a process of its own.", '', '| step | wall time | peak memory | result |', '|---|---|---|---|']
    for s in steps:
        r = res[s]; extra = {k: v for k, v in r.items() if k not in ('step', 'seconds', 'read_table_s', 'peak_rss_mb')}
        md.append(f"| {names[s]} | {r['seconds']} s | {r['peak_rss_mb']} MB | {', '.join(f'{k} {v}' for k, v in extra.items())} |")
    md += ['', f"Second image check over the unchanged corpus: {res['check_again']['seconds']} s (target <= 10 s: {'met' if out['second_check_met'] else 'not met'})."]
    (RESULTS/'corpus.md').write_text('\n'.join(md) + '\n')
    print('\n'.join(md))

if __name__ == '__main__': main()
