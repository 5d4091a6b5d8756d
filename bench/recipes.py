#!/usr/bin/env python
"""The freeze/unfreeze recipes on real chest X-rays: per-stage tables of `head` and `progressive`, and trainable
parameters per recipe stage for several backbones.

Uses ../shared/data/xray3 through its labels.csv with a patient-grouped train/valid/test split (saved as
bench/xray3_split.csv, so later benchmarks reuse the very same split). The data folder is only read; a 256 px
cache of it goes to --cache. Writes bench/results/recipes.{json,md}.

    python bench/recipes.py --data ../shared/data/xray3 --cache /tmp/xray3_256
"""
import argparse, json, os, platform, time
from pathlib import Path
import pandas as pd, torch
from covid_fastai.data import table_layout, split_layout, patient_overlap
from covid_fastai.dataloaders import covid_dls
from covid_fastai.models import ARCHS
from covid_fastai.learner import covid_learner
from covid_fastai.recipes import STAGES, set_stage, n_trainable
from covid_fastai.train import train_covid_learner

here = Path(__file__).parent

def fixed_split(data, fn=here/'xray3_split.csv', seed=42):
    "The patient-grouped split of xray3 (70/15/15), made once and then read back"
    if not fn.exists():
        df = pd.read_csv(Path(data)/'labels.csv')
        lay = split_layout(table_layout(df, path=data, label_delim=''), 'patient', valid_pct=0.15, test_pct=0.15, seed=seed)
        assert patient_overlap(lay) == {} and len(lay.df) == len(df)
        df.assign(split=lay.df.split.values)[['path', 'label', 'patient', 'split']].to_csv(fn, index=False)
    return table_layout(pd.read_csv(fn), path=data, split_col='split', label_delim='')

def md_table(df, fmt='{:.4g}'):
    "A DataFrame as a Markdown table"
    cells = [[fmt.format(v) if isinstance(v, float) else str(v) for v in r] for r in df.itertuples(index=False)]
    return '\n'.join(['| ' + ' | '.join(df.columns) + ' |', '|' + '---|' * len(df.columns)] + ['| ' + ' | '.join(r) + ' |' for r in cells])

def param_counts(archs, dls):
    rows = []
    for a in archs:
        learn = covid_learner(dls, a, pretrained=(a == 'efficientnet_lite0'))
        rows.append(dict(arch=a, **{s: n_trainable(set_stage(learn, s)) for s in STAGES}))
    return pd.DataFrame(rows)

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--data', default='../shared/data/xray3'); p.add_argument('--cache', default='/tmp/xray3_256')
    p.add_argument('--arch', default='efficientnet_lite0'); p.add_argument('--size', type=int, default=224)
    p.add_argument('--bs', type=int, default=32); p.add_argument('--head-epochs', type=int, default=4)
    p.add_argument('--stage-epochs', default='4,2,2,2'); p.add_argument('--stage-lrs', default='2e-3,1e-3,5e-4,2e-4')
    p.add_argument('--out', default=str(here/'results'/'recipes'))
    a = p.parse_args()
    lay = fixed_split(Path(a.data))
    print(lay, 'patients across splits:', len(patient_overlap(lay)))
    common = dict(arch=a.arch, size=a.size, bs=a.bs, seed=42, cache=a.cache, test_pct=0.)
    res = {}
    t0 = time.perf_counter()
    head = train_covid_learner(lay, recipe='head', epochs=a.head_epochs, lr=2e-3, **common)
    res['head'] = dict(stages=head.stages.to_dict('records'), test=head.card.metrics.get('test'), seconds=round(time.perf_counter()-t0))
    t0 = time.perf_counter()
    prog = train_covid_learner(lay, recipe='progressive', epochs=[int(x) for x in a.stage_epochs.split(',')],
                               lr=[float(x) for x in a.stage_lrs.split(',')], **common)
    res['progressive'] = dict(stages=prog.stages.to_dict('records'), test=prog.card.metrics.get('test'), seconds=round(time.perf_counter()-t0))
    counts = param_counts(['mobilenet', 'resnet18', 'vgg16', 'densenet121', 'efficientnet_lite0'], head.dls)
    out = dict(machine=dict(cpus=os.cpu_count(), torch=torch.__version__, device='cuda' if torch.cuda.is_available() else 'cpu'),
               data=dict(images=len(lay.df), split=lay.df.split.value_counts().to_dict(), patients_across_splits=len(patient_overlap(lay))),
               settings=vars(a), results=res, n_trainable=counts.to_dict('records'))
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out + '.json').write_text(json.dumps(out, indent=2, default=str))
    def table(st):
        cols = ['stage', 'trainable', 'epochs', 'lr', 'train_loss', 'valid_loss', 'accuracy', 'f1_score', 'seconds']
        df = pd.DataFrame(st)[cols]
        return md_table(df)
    md = ['# Recipes on real chest X-rays', '',
          f"`{a.arch}` at {a.size} px on xray3 (3 classes), patient-grouped split {out['data']['split']} "
          f"(bench/xray3_split.csv, {out['data']['patients_across_splits']} patients on two sides), seed 42, CPU ({os.cpu_count()} cores). "
          "Metrics of the validation set at the end of each stage; the test set is scored once at the end.", '',
          f"## head ({res['head']['seconds']} s)", '', table(res['head']['stages']), '', f"Test: {res['head']['test']}", '',
          f"## progressive ({res['progressive']['seconds']} s)", '', table(res['progressive']['stages']), '', f"Test: {res['progressive']['test']}", '',
          '## Trainable parameters per stage', '', md_table(counts)]
    Path(a.out + '.md').write_text('\n'.join(md) + '\n')
    print('\n'.join(md))
