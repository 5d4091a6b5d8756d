#!/usr/bin/env python
"""Held-out source: how a training setting does on X-rays from a source it never saw (the shortcut-learning tutorial's method).

The COVID-19 images of xray3 come from two kinds of source: uploads of one case-sharing site (file names are UUIDs) and
figures cut out of journal articles. Every case-site image is left out of training; the model trains on the rest of the
benchmark's patient-grouped split (bench/xray3_split.csv, 3 classes) and is scored COVID-19 vs Other (a label map) on

- `same source`: the test split's journal-figure COVID-19 images with the NIH test images (No_findings, Pneumonia);
- `new source`: all case-site COVID-19 images (never seen in training) with the same NIH test images.

A setting that learns the disease rather than the source keeps its COVID-19 sensitivity on the new source. Each setting
(`train_covid_learner` arguments, one JSON dict per `--set`) trains in a process of its own; the results go to
bench/results/source_holdout/<name>.json and `--report` writes bench/results/source_holdout.{json,md}.

    python bench/source_holdout.py --data ../shared/data/xray3 --set '{"epochs": 3, "size": 128}' --set '{"epochs": 3, "size": 128, "preprocess": "clahe"}'
    python bench/source_holdout.py --report
"""
import argparse, hashlib, json, sys, tempfile, time
from pathlib import Path
import numpy as np, pandas as pd

here = Path(__file__).parent
sys.path.insert(0, str(here))
from _child import emit, run_child
OUT = here/'results'/'source_holdout'
CASE_SITE = r'/[0-9A-F]{8}-[0-9A-F]{4}-'            # case-sharing-site uploads are named by a UUID
COVID_VS_OTHER = {'No_findings': 'Other', 'Pneumonia': 'Other'}

def sources(df):
    "The source of each row of the split table: 'case site', 'journals' (the other COVID-19 images) or 'NIH'"
    covid, site = df.label == 'COVID-19', df.path.str.contains(CASE_SITE, regex=True)
    return pd.Series(np.where(covid & site, 'case site', np.where(covid, 'journals', 'NIH')), index=df.index)

def one(data, settings, arch, n_boot):
    "Train without the case-site images and score the same-source and new-source test sets"
    import torch
    from covid_fastai.data import table_layout
    from covid_fastai.train import train_covid_learner
    from covid_fastai.report import evaluate
    from recipes import fixed_split
    data = Path(data)
    fixed_split(data)   # (writes the split table the first time)
    df = pd.read_csv(here/'xray3_split.csv'); df['source'] = sources(df)
    cols = ['path', 'label', 'patient', 'split']
    t0 = time.perf_counter()
    learn = train_covid_learner(table_layout(df[df.source != 'case site'][cols], path=data, split_col='split', label_delim=''), arch=arch, **settings)
    secs = time.perf_counter() - t0
    nih = df[(df.source == 'NIH') & (df.split == 'test')]
    tests = {'same source': pd.concat([df[(df.source == 'journals') & (df.split == 'test')], nih]),
             'new source': pd.concat([df[df.source == 'case site'], nih])}
    from quality import KEYS   # the settings the accuracy benchmark describes runs by
    cfg = learn.card.recipe['config']
    res = dict(settings=settings, config={k: cfg[k] for k in KEYS}, arch=arch, train_seconds=round(secs, 1),
               n_train=int((learn.dls.layout.df.split == 'train').sum()), tta=bool(learn.card.tta), torch=torch.__version__)
    with tempfile.TemporaryDirectory() as tmp:
        for name, t in tests.items():
            t = t.assign(label=t.label.replace(COVID_VS_OTHER))[['path', 'label', 'patient']]
            m = evaluate(learn, table_layout(t, path=data, label_delim=''), out=Path(tmp)/name[:3], label_map=COVID_VS_OTHER, cam=None,
                         n_boot=n_boot, progress=False)
            pc, ci = m['per_class']['COVID-19'], m['ci']
            res[name] = dict(covid_images=int((t.label == 'COVID-19').sum()), other_images=int((t.label == 'Other').sum()),
                             sensitivity=pc['recall'], sensitivity_ci=ci['recall']['COVID-19'], specificity=pc['specificity'],
                             specificity_ci=ci['specificity']['COVID-19'], auc=pc['auc'], auc_ci=ci['auc']['COVID-19'])
    return res

def settings_text(r):
    "What a result's training differs in from today's defaults: its full configuration, or (results from before it was recorded) its settings"
    from quality import describe   # the same wording as the accuracy benchmark (settings older files lack read as their old defaults)
    return describe(r.get('config') or {**THEN, **r['settings']})

THEN = dict(sampling='auto', preprocess=None, train_bn=True)   # the defaults when the first results (without `config`) were made

def _pct(v, ci=None): return f"{100*v:.1f}" + (f" [{100*ci[0]:.1f}, {100*ci[1]:.1f}]" if ci else '')

def report():
    rows = [json.loads(p.read_text()) for p in sorted(OUT.glob('*.json'))]
    par = __doc__.split('\n\n')
    md = ['# Held-out source', '', par[1].replace('\n', ' '), '', par[2].replace('\n  ', ' '), '',
          'Settings: what differs from today\'s defaults of `train_covid_learner`. COVID-19 vs Other; 95% bootstrap intervals in brackets. Sensitivity: COVID-19 images called COVID-19; specificity: NIH images not called COVID-19.', '',
          '| settings | arch | training s | same source: sensitivity % | specificity % | AUC | new source: sensitivity % | specificity % | AUC |',
          '|---|---|---|---|---|---|---|---|---|']
    for r in rows:
        s, n = r['same source'], r['new source']
        md.append(f"| {settings_text(r)} | {r['arch']} | {r['train_seconds']:.0f} | {_pct(s['sensitivity'], s['sensitivity_ci'])} | "
                  f"{_pct(s['specificity'])} | {s['auc']:.3f} | {_pct(n['sensitivity'], n['sensitivity_ci'])} | {_pct(n['specificity'])} | {n['auc']:.3f} |")
    if rows: md += ['', f"Same source: {rows[0]['same source']['covid_images']} COVID-19 and {rows[0]['same source']['other_images']} NIH test images; "
                        f"new source: {rows[0]['new source']['covid_images']} case-site COVID-19 images and the same NIH images. "
                        f"{rows[0]['n_train']} training images (no case-site image)."]
    (OUT.parent/'source_holdout.md').write_text('\n'.join(md) + '\n')
    (OUT.parent/'source_holdout.json').write_text(json.dumps(rows, indent=2))
    print('\n'.join(md))

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--data', default=str(here.resolve().parents[1]/'shared'/'data'/'xray3'))
    ap.add_argument('--set', action='append', default=None, help='JSON dict of train_covid_learner arguments; repeat for several settings')
    ap.add_argument('--arch', default='efficientnet_lite0')
    ap.add_argument('--n-boot', type=int, default=1000)
    ap.add_argument('--report', action='store_true', help='only assemble the report from the results present')
    ap.add_argument('--one', default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one: return emit(one(a.data, json.loads(a.one), a.arch, a.n_boot))
    if not a.report:
        OUT.mkdir(parents=True, exist_ok=True)
        for s in a.set or ['{}']:
            print('running', s, flush=True)
            res = run_child([sys.executable, __file__, '--one', s, '--data', a.data, '--arch', a.arch, '--n-boot', str(a.n_boot)], s)
            (OUT/f"{a.arch}_{hashlib.md5(s.encode()).hexdigest()[:6]}.json").write_text(json.dumps(res, indent=2))
            print({k: res[k] for k in ('settings', 'train_seconds')}, res['new source']['sensitivity'], flush=True)
    report()

if __name__ == '__main__': main()
