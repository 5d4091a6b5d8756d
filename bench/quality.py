#!/usr/bin/env python
"""Accuracy on real chest X-rays, against the published numbers, with `train_covid_learner`'s defaults.

Data: ../shared/data/xray3 (905 X-rays from the DarkCovidNet sources: COVID-19 94, No_findings 406, Pneumonia 405), read
through its labels.csv and never copied or modified. The split is patient-grouped (70/15/15, no patient on two sides) and
fixed in bench/xray3_split.csv, so every run and every later check sees the very same test images.

Runs (each in its own process, one JSON per run under bench/results/quality/, so runs can be made one at a time):

- `default`: `train_covid_learner(lay, arch)` with the library's defaults (recipe `fine_tune`), 3 classes;
- `head`, `progressive`: the same number of epochs, spent on the head only, or on the head, last block, last 3 blocks
  and the whole network in turn;
- `binary`: the defaults on COVID-19 vs No_findings (Pneumonia left out), the DarkCovidNet binary task;
- `<run>@<arch>`: the same with another backbone, when its ImageNet weights are on this machine.

Each run reports test accuracy, macro F1, COVID-19 sensitivity and specificity and one-vs-rest AUCs with 95% percentile
bootstrap CIs, the training wall-clock time and the device. `--report` assembles bench/results/quality.{json,md,png}
from the runs present.

    python bench/quality.py --data ../shared/data/xray3 --runs default,binary,head,progressive
    python bench/quality.py --report
"""
import argparse, hashlib, inspect, json, os, platform, sys, time
from pathlib import Path
import numpy as np, pandas as pd

here = Path(__file__).parent
sys.path.insert(0, str(here))
from _child import emit, run_child
OUT = here/'results'/'quality'
REFERENCE = dict(source='DarkCovidNet (Ozturk et al. 2020): same source images, image-level 5-fold split, trained from scratch for 100 epochs',
                 binary_accuracy=0.9808, three_class_accuracy=0.8702)
POSITIVE = 'COVID-19'

def default_kwargs():
    "The defaults of `train_covid_learner` that define the recipe"
    from covid_fastai.config import TrainConfig
    d = TrainConfig()
    return {k: getattr(d, k) for k in ('arch', 'recipe', 'epochs', 'freeze_epochs', 'lr', 'size', 'bs', 'loss', 'opt', 'schedule', 'sampling', 'preprocess', 'tta', 'train_bn', 'mixup')}

OLD = dict(train_bn=True, seed=42, preprocess=None, sampling=None, mixup=0.)   # values of settings that older result files do not record

KEYS = ('recipe', 'freeze_epochs', 'epochs', 'size', 'lr', 'loss', 'sampling', 'preprocess', 'train_bn', 'mixup', 'tta', 'seed')   # the settings a row is described by

def describe(st):
    "The settings of a run that differ from today's defaults, e.g. 'epochs 10, preprocess None' ('the defaults' when none do)"
    from covid_fastai.config import TrainConfig
    d = TrainConfig()
    val = lambda k: st.get(k, OLD.get(k))
    diff = [f"{k} {'none' if val(k) is None else val(k)}" for k in KEYS if (k in st or k in OLD) and val(k) != getattr(d, k)
            and not (k == 'loss' and val(k) in (None, 'ce'))]
    return ', '.join(diff) or 'the defaults'

def opt_name(learn) -> str:
    "The optimizer `learn` trained with, e.g. 'AdamW (PyTorch, fused) in OptimWrapper' or fastai's 'Adam'"
    o = learn.opt
    if hasattr(o, 'opt'):   # fastai's `OptimWrapper` around a PyTorch optimizer
        d = o.opt.defaults
        impl = 'fused' if d.get('fused') else 'foreach' if d.get('foreach') else 'for-loop'
        return f"{type(o.opt).__name__} (PyTorch, {impl}) in OptimWrapper"
    return f"{getattr(learn.opt_func, '__name__', type(o).__name__)} (fastai)"

def opt_note(r) -> str:
    "' (fused AdamW)' for a run trained with today's default optimizer; runs from before issue 34 have no `optimizer` (fastai's Adam)"
    return ' (fused AdamW)' if r.get('optimizer', '').startswith('AdamW (PyTorch, fused)') else ''

def run_kwargs(run):
    "Arguments of `train_covid_learner` for `run` (beyond the data and the architecture)"
    d = default_kwargs()
    n = d['freeze_epochs'] + d['epochs'] if d['recipe'] == 'fine_tune' else d['epochs']
    lr = d['lr']
    if run == 'default': return {}
    if run == 'binary': return dict(label_map={'Pneumonia': None})
    if run == 'head': return dict(recipe='head', epochs=n)
    if run == 'progressive':
        rest = n - d['freeze_epochs']
        eps = [d['freeze_epochs'], rest // 3, rest // 3, rest - 2 * (rest // 3)]
        return dict(recipe='progressive', epochs=eps, lr=[lr, lr / 2, lr / 4, lr / 10])
    raise ValueError(f"Unknown run {run!r}; valid: default, binary, head, progressive")

def weights_available(archs):
    "For each arch: True when its ImageNet weights can be had on this machine, else the reason"
    from covid_fastai.models import pretrained_model
    out = {}
    for a in archs:
        try: pretrained_model(a); out[a] = True
        except Exception as e: out[a] = str(e).splitlines()[0][:200]
    return out

def device_name():
    import torch
    if torch.cuda.is_available(): return torch.cuda.get_device_name()
    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} threads)"

def one(run, arch, data, n_boot, cache, over=None, save=None):
    "Train and score one run (with `over` overriding its arguments, for tuning; saved to `save` when given); returns a JSON-able dict"
    import torch
    from recipes import fixed_split
    from covid_fastai.train import train_covid_learner
    from covid_fastai.metrics import classification_metrics
    lay = fixed_split(Path(data))
    kw = {**run_kwargs(run), **(over or {})}
    t0 = time.perf_counter()
    learn = train_covid_learner(lay, arch=arch, cache=cache, **kw)
    secs = time.perf_counter() - t0
    if save:
        from covid_fastai.inference import save_covid_model
        save_covid_model(learn, save)
    test = learn.dls.layout.subset('test')
    dl = learn.dls.test_dl(test, with_labels=True)
    probs, y = learn.get_preds(dl=dl)
    vocab = list(learn.dls.vocab)
    m = classification_metrics(y.numpy(), probs.numpy(), vocab, n_boot=n_boot)
    ci = m['ci']
    row = dict(run=run + (' ' + json.dumps(over) if over else ''), arch=arch, task='binary' if run == 'binary' else '3-class', classes=vocab, n_test=m['n'],
               n_train=int((learn.dls.layout.df.split == 'train').sum()), n_valid=int((learn.dls.layout.df.split == 'valid').sum()),
               accuracy=m['accuracy'], accuracy_ci=ci['accuracy'], macro_f1=m['macro_f1'], macro_f1_ci=ci['macro_f1'],
               macro_auc=m['macro_auc'], macro_auc_ci=ci['macro_auc'],
               covid_sensitivity=m['per_class'][POSITIVE]['recall'], covid_sensitivity_ci=ci['recall'][POSITIVE],
               covid_specificity=m['per_class'][POSITIVE]['specificity'], covid_specificity_ci=ci['specificity'][POSITIVE],
               auc={c: m['per_class'][c]['auc'] for c in vocab}, auc_ci=ci['auc'], confusion_matrix=m['confusion_matrix'],
               valid=learn.stages.to_dict('records')[-1] if hasattr(learn, 'stages') else None,
               settings={**default_kwargs(), **kw, 'arch': arch, 'cache': cache},
               train_seconds=round(secs, 1), device=device_name(), torch=torch.__version__, n_boot=n_boot, saved=save and Path(save).name,
               optimizer=opt_name(learn))
    row['tta'] = tta_scores(learn, vocab, n_boot)
    return row

def tta_scores(learn, vocab, n_boot):
    "Validation and test metrics of the trained model without and with test-time augmentation (choose on validation only)"
    from covid_fastai.evaluation import Evaluation
    from covid_fastai.metrics import classification_metrics
    lay, out = learn.dls.layout, {}
    for split in ('valid', 'test'):
        for tta in (False, True):
            ev = Evaluation.from_model(learn, lay.new(lay.subset(split)), tta=tta, progress=False)
            m = classification_metrics(ev.y, ev.probs, list(ev.classes), n_boot=n_boot if split == 'test' else 200)
            pos = POSITIVE if POSITIVE in m['per_class'] else None
            out[f"{split}{'_tta' if tta else ''}"] = dict(accuracy=m['accuracy'], accuracy_ci=m['ci']['accuracy'], macro_f1=m['macro_f1'],
                macro_auc=m['macro_auc'], covid_sensitivity=pos and m['per_class'][pos]['recall'],
                covid_specificity=pos and m['per_class'][pos]['specificity'], n=m['n'])
    return out

def member_preds(model, lay, split):
    "Probabilities, labels and classes of one saved model on a split (test-time augmentation as its card says), cached in the model's folder"
    from covid_fastai.evaluation import Evaluation
    from covid_fastai.inference import load_covid_model
    f = Path(model)/f"xray3_{split}_probs.npz"   # (in the model's own folder)
    if f.exists() and f.stat().st_mtime > (Path(model)/'model.safetensors').stat().st_mtime:
        z = np.load(f, allow_pickle=False); return z['probs'], z['y'], list(z['classes'])
    ev = Evaluation.from_model(load_covid_model(model), lay.new(lay.subset(split)), progress=False)
    f.parent.mkdir(parents=True, exist_ok=True)
    np.savez(f, probs=ev.probs, y=np.asarray(ev.y), classes=np.asarray(ev.classes))
    return ev.probs, np.asarray(ev.y), list(ev.classes)

def split_scores(models, lay, n_boot):
    "Validation and test metrics of saved models (several: the equal-weight average of their probabilities, as `Ensemble` does), with per-class intervals"
    from covid_fastai.metrics import classification_metrics
    out = {}
    for split in ('valid', 'test'):
        preds = [member_preds(m, lay, split) for m in models]
        if any(c != preds[0][2] or not np.array_equal(y, preds[0][1]) for _, y, c in preds): raise ValueError("The models' classes or images differ")
        probs, y, classes = np.mean([p for p, _, _ in preds], axis=0), preds[0][1], preds[0][2]
        m = classification_metrics(y, probs, classes, n_boot=n_boot)
        ci = m['ci']
        out[split] = dict(n=m['n'], accuracy=m['accuracy'], accuracy_ci=ci['accuracy'], macro_f1=m['macro_f1'], macro_f1_ci=ci['macro_f1'],
                          macro_auc=m['macro_auc'], macro_auc_ci=ci['macro_auc'], confusion_matrix=m['confusion_matrix'], classes=classes,
                          per_class={c: dict(sensitivity=pc['recall'], sensitivity_ci=ci['recall'][c], specificity=pc['specificity'],
                                             specificity_ci=ci['specificity'][c], auc=pc['auc'], auc_ci=ci['auc'][c]) for c, pc in m['per_class'].items()})
    return out

def score(models, data, n_boot):
    "Score saved models (one, or several as their ensemble averaging probabilities) on the fixed validation and test splits"
    from recipes import fixed_split
    lay = fixed_split(Path(data))
    return dict(models=[Path(m).name for m in models], tta=[bool(json.loads((Path(m)/'model.json').read_text()).get('tta')) for m in models], n_boot=n_boot,
                device=device_name(), **split_scores(models, lay, n_boot))

def _pct(v): return '-' if v is None else f"{100*v:.1f}"

def _ci(v, ci, pct=True):
    f = (lambda x: f"{100*x:.1f}") if pct else (lambda x: f"{x:.3f}")
    return f"{f(v)} [{f(ci[0])}, {f(ci[1])}]" if ci and ci[0] is not None else f(v)

def report(weights=None):
    "bench/results/quality.{json,md,png} from the runs under bench/results/quality/"
    rows = [json.loads(p.read_text()) for p in sorted(OUT.glob('*.json'))]
    if not rows: sys.exit(f"No runs under {OUT}; run some first")
    order = {r: i for i, r in enumerate(['default', 'binary', 'head', 'progressive'])}
    rows.sort(key=lambda r: (r['arch'] != 'efficientnet_lite0', r['arch'], order.get(r['run'], 9)))
    wfile = OUT.parent/'quality_weights.json'
    if weights is not None: wfile.write_text(json.dumps(weights, indent=2))
    weights = json.loads(wfile.read_text()) if wfile.exists() else {}
    d = default_kwargs()
    md = ['# Accuracy on real chest X-rays', '',
          f"Patient-grouped test split of xray3 (`bench/xray3_split.csv`: {rows[0]['n_train']} train / {rows[0]['n_valid']} valid / "
          f"{rows[0]['n_test'] if rows[0]['task'] == '3-class' else '129'} test images, no patient on two sides). "
          f"95% percentile bootstrap intervals ({rows[0]['n_boot']} resamples) in brackets. `default` is "
          f"`train_covid_learner(path, arch=...)` with the library's defaults: {', '.join(f'{k}={v!r}' for k, v in d.items() if k != 'arch')}.", '',
          '| run | arch | task | test images | accuracy % | macro F1 | COVID-19 sensitivity % | COVID-19 specificity % | macro AUC | training s | device |',
          '|---|---|---|---|---|---|---|---|---|---|---|']
    for r in rows:
        md.append(f"| {r['run']} | {r['arch']} | {r['task']} | {r['n_test']} | {_ci(r['accuracy'], r['accuracy_ci'])} | "
                  f"{_ci(r['macro_f1'], r['macro_f1_ci'], False)} | {_ci(r['covid_sensitivity'], r['covid_sensitivity_ci'])} | "
                  f"{_ci(r['covid_specificity'], r['covid_specificity_ci'])} | {_ci(r['macro_auc'], r['macro_auc_ci'], False)} | "
                  f"{r['train_seconds']:.0f} | {r['device']} |")
    md += ['', f"Reference: {REFERENCE['source']}: {100*REFERENCE['binary_accuracy']:.2f}% binary, "
           f"{100*REFERENCE['three_class_accuracy']:.2f}% 3-class accuracy. An image-level split puts images of one patient on "
           "both sides; the split here does not, so these numbers are the harder, more honest kind.", '',
           '## One-vs-rest AUC per class', '', '| run | arch | ' + ' | '.join(rows[0]['classes']) + ' |',
           '|---|---|' + '---|' * len(rows[0]['classes'])]
    for r in rows:
        if r['task'] != '3-class': continue
        md.append(f"| {r['run']} | {r['arch']} | " + ' | '.join(_ci(r['auc'][c], r['auc_ci'][c], False) for c in r['classes']) + ' |')
    md += ['', '## Confusion matrices (rows: true, columns: predicted)', '']
    for r in rows:
        md += [f"**{r['run']} / {r['arch']}** ({', '.join(r['classes'])}): `{r['confusion_matrix']}`", '']
    dflt = next((r for r in rows if r['run'] == 'default' and r['arch'] == 'efficientnet_lite0'), None)
    if dflt:
        cm, cls = np.array(dflt['confusion_matrix']), dflt['classes']
        i, j = cls.index('No_findings'), cls.index('Pneumonia')
        off = cm[i, j] + cm[j, i]
        wrong = cm.sum() - np.trace(cm)
        md += ['## Reading the numbers', '',
               f"- Of the {wrong} mistakes of `default` on the 3-class test split, {off} are No_findings <-> Pneumonia. Both classes are "
               "NIH ChestX-ray14 images whose labels were mined from radiology reports; pneumonia is one of the hardest of its 14 findings "
               "(CheXNet, a DenseNet-121 trained on 100,000 of its images, reached an AUC of 0.768). The COVID-19 class is nearly "
               f"separable (AUC {dflt['auc']['COVID-19']:.3f}).",
               f"- The validation split (other patients, same size) scored {dflt['valid']['accuracy']:.3f} accuracy at the last epoch: "
               "with 129 test images the 95% interval of an accuracy spans about 15 points, so test and validation differ by chance as well.",
               "- DarkCovidNet's 87.02% comes from an image-level split: NIH patients have many X-rays, and with images of one patient "
               "on both sides the model is partly scored on patients it has seen. The split here keeps each patient on one side.",
               "- COVID-19 images come from other sources than the NIH images (journal figures, case-sharing sites; 92 of 94 are "
               "not square, while every NIH image is 512 x 512): a COVID-19 sensitivity near 100% on this data says more about the "
               "source than about the disease. The shortcut-learning tutorial measures it."]
        rec = {r['run']: r for r in rows if r['arch'] == 'efficientnet_lite0' and r['run'] in ('head', 'default', 'progressive')}
        n_ep = lambda r: sum(r['settings']['epochs']) if isinstance(r['settings']['epochs'], list) else r['settings']['epochs'] + (r['settings']['freeze_epochs'] if r['settings']['recipe'] == 'fine_tune' else 0)
        if len(rec) == 3 and len({n_ep(r) for r in rec.values()}) == 1:
            md += [f"- The three recipes with the same {sum(int(x) for x in [dflt['settings']['freeze_epochs'], dflt['settings']['epochs']])} epochs: "
                   + ', '.join(f"`{k}` {100*rec[k]['accuracy']:.1f}% (validation {100*rec[k]['valid']['accuracy']:.1f}%)" for k in ('head', 'default', 'progressive'))
                   + " test accuracy; their intervals overlap, so on 647 training images no recipe is measurably better than another. "
                   "`default` is fastai's `fine_tune`."]
        md += ['']
    fixed = [r for r in rows if 'tta' in r]
    if fixed:
        md += ['## Test-time augmentation', '',
               'The same trained model scored without and with TTA (the image, its flip, a central 90% zoom and its flip, averaged): '
               'chosen on the validation split, reported on the test split.', '',
               '| run | arch | validation accuracy | with TTA | validation COVID-19 sensitivity | with TTA | test accuracy | with TTA | test COVID-19 sensitivity | with TTA |',
               '|---|---|---|---|---|---|---|---|---|---|']
        for r in fixed:
            t = r['tta']
            md.append(f"| {r['run']} | {r['arch']} | {t['valid']['accuracy']:.3f} | {t['valid_tta']['accuracy']:.3f} | "
                      f"{_pct(t['valid']['covid_sensitivity'])} | {_pct(t['valid_tta']['covid_sensitivity'])} | "
                      f"{_ci(t['test']['accuracy'], t['test']['accuracy_ci'])} | {_ci(t['test_tta']['accuracy'], t['test_tta']['accuracy_ci'])} | "
                      f"{_pct(t['test']['covid_sensitivity'])} | {_pct(t['test_tta']['covid_sensitivity'])} |")
        md += ['']
    stale = [r for r in rows if 'tta' not in r]
    if stale:
        md += [f"Runs without a TTA column ({', '.join(sorted({r['run'] for r in stale}))}) were scored on an augmented validation set (older "
               "runs): read their test numbers (scored unaugmented), not their validation numbers; their settings were chosen on that "
               "augmented validation set too.", '']
    tuning = [json.loads(p.read_text()) for p in sorted((OUT.parent/'quality_tuning').glob('*.json'))]
    if tuning and dflt:
        md += ['## Tuning the defaults', '',
               'Candidates for the defaults on the same split (3 classes, `efficientnet_lite0`), chosen on the validation split (other '
               'patients) and never on the test split. One seed each: run-to-run variation is about 4 points on either split.', '',
               '| settings | validation images | validation accuracy | with TTA | test accuracy % | with TTA % | macro F1 | COVID-19 sensitivity % | training s |',
               '|---|---|---|---|---|---|---|---|---|']
        for r in [dflt] + [r for r in tuning if r != dflt]:
            st, t = r['settings'], r.get('tta')
            desc = describe(st) + (f" ({r['arch']})" if r['arch'] != 'efficientnet_lite0' else '') + opt_note(r)
            md.append(f"| {desc}{' (the `default` run above)' if r is dflt else ''} | {'unaugmented' if t else 'augmented (older run)'} | {r['valid']['accuracy']:.3f} | "
                      f"{t['valid_tta']['accuracy']:.3f} | " if t else f"| {desc} | augmented (older run) | {r['valid']['accuracy']:.3f} | - | ")
            md[-1] += (f"{_ci(r['accuracy'], r['accuracy_ci'])} | {100*t['test_tta']['accuracy']:.1f} | " if t else f"{_ci(r['accuracy'], r['accuracy_ci'])} | - | ") + \
                      f"{r['macro_f1']:.3f} | {100*r['covid_sensitivity']:.1f} | {r['train_seconds']:.0f} |"
        md += ['', 'Each row names only the settings that differ from today\'s defaults. Rows on augmented validation images '
               '(older runs) chose the earlier 256 px, 1 + 10 epochs, class-balanced settings on a validation set that was augmented: '
               'compare them by their test numbers; the rows on unaugmented validation images are the tuning of today\'s defaults. Training times taken while other jobs shared the 2 cores are longer than the machine alone '
               'would take. A candidate becomes a default only when its validation gain is larger than the run-to-run variation (about '
               '4 points on 129 images) or holds over several runs. Test-time augmentation (+4.7 points, COVID-19 sensitivity 69% -> 100% '
               'on validation) did and is on by default. The current defaults add three changes: CLAHE (`preprocess=\'clahe\'`: '
               'validation 0.876 and 0.907 with TTA in its first two runs, against 0.822-0.860 for three seeds of the previous defaults; '
               'it also raised COVID-19 sensitivity on a source held out of training from 78% to 97%, see `source_holdout.md`), '
               'frozen batch norm in the frozen body (`train_bn=False`: a head-only epoch about 3x cheaper on this CPU, validation as '
               'good), and two more unfrozen epochs bought with the time saved (1 + 12): 743 s of training alone on this CPU, inside the '
               '15-minute budget. The border crop, more head-only epochs and two more epochs without CLAHE did not beat them on '
               'validation. Over three seeds (next section) the new defaults scored 0.907, 0.845 and 0.845 on validation with TTA '
               '(mean 0.866; the previous defaults 0.853, 0.860, 0.822, mean 0.845) and 79.8, 78.3 and 73.6% on the test split '
               '(mean 77.3%; the previous 76.7, 79.1, 79.8%, mean 78.5%): on 129 images the two cannot be told apart. CLAHE is kept '
               'for its validation gain over the same settings without it (0.907 against 0.829 with TTA) and for the held-out source in a '
               'short run (with the full defaults, with and without CLAHE alike found 86.1% of the held-out source, see `source_holdout.md`), '
               'frozen batch norm for the time it saves. Six more candidates were measured after the '
               'new defaults, seed 42 each (the defaults at that seed: 0.907 with TTA; over three seeds 0.866): label smoothing 0.891, mixup '
               '(`mixup=0.4`, fastai\'s `MixUp`) 0.845, lr 4e-3 0.899, lr 1e-3 0.868, 224 px 0.837 (568 s), `efficientnet_lite2` 0.868 (978 s, over the '
               'budget). None beat the defaults on validation, so they stay; mixup\'s 82.9% on the test split (the highest single lite0 run) '
               'does not choose anything, as test numbers never do here. The optimizer (issue 34): `opt=\'adam\'` is now PyTorch\'s fused '
               '`AdamW` in fastai\'s `OptimWrapper` with fastai\'s hyper-parameters (rows marked "fused AdamW"); the other rows were trained '
               'with fastai\'s own Python `Adam`. Over seeds 42, 1 and 2 the defaults with the fused `AdamW` scored 0.891, 0.822 and 0.829 on '
               'validation with TTA (mean 0.847; with fastai\'s `Adam` 0.907, 0.845, 0.845, mean 0.866: two or three of 129 images fewer at '
               'each seed) and 80.6, 80.6 and 73.6% on the test split with TTA (mean 78.3%; with fastai\'s `Adam` 79.8, 78.3, 73.6%, mean '
               '77.3%); without TTA, validation 0.853, 0.806, 0.791 against 0.860, 0.814, 0.791 (one image or none apart). Each difference is '
               'within the run-to-run variation of about 4 points, in either direction depending on the split, so the optimizer is kept '
               '(a step of 4-12 ms instead of 11-20 ms in the profile of `speed_cpu_amd-epyc.md`); training the defaults alone took 722 s '
               '(seed 2) against 743 s (seed 42) with fastai\'s `Adam`: on a CPU the step is forward and backward.', '']
    md += scored_section()
    if weights:
        md += ['## Backbones and their ImageNet weights on this machine', '', '| arch | weights |', '|---|---|']
        def why(w):
            if 'urlopen error' in w or 'Name or service not known' in w: return 'not available: the download from download.pytorch.org failed (no network)'
            return 'not available: ' + w.replace('|', '/')
        md += [f"| {a} | {'available' if w is True else why(w)} |" for a, w in weights.items()]
        ok = [f"`{a}`" for a, w in weights.items() if w is True]
        md += ['', f"Only {', '.join(ok) or 'no backbone'} could be trained from ImageNet weights here; the `run@arch` form of `--runs` trains any other "
               "backbone on a machine that has its weights (online, or with the file in torch's cache)."]
    (OUT.parent/'quality.md').write_text('\n'.join(md) + '\n')
    (OUT.parent/'quality.json').write_text(json.dumps(dict(reference=REFERENCE, defaults=d, runs=rows, weights=weights), indent=2))
    plot(rows)
    print('\n'.join(md))

def scored_section():
    "Markdown of the saved models scored with `--score`: per seed, their mean and range, and ensembles, with per-class intervals"
    import re
    res = {p.stem: json.loads(p.read_text()) for p in sorted((OUT.parent/'quality_scored').glob('*.json'))}
    if not res: return []
    runs = [json.loads(p.read_text()) for d in (OUT, OUT.parent/'quality_tuning') for p in d.glob('*.json')]
    secs = {r['saved']: r['train_seconds'] for r in runs if r.get('saved')}   # the runs that trained the saved models
    for r in res.values():
        if r.get('train_seconds') is None and all(m in secs for m in r['models']): r['train_seconds'] = round(sum(secs[m] for m in r['models']))
    md = ['## Chosen settings: seeds, per-class numbers and the ensemble preset', '',
          'Saved models (`save_covid_model`, test-time augmentation as their cards say: on by default) scored with '
          '`python bench/quality.py --score MODEL[,MODEL...] --name NAME`; several models are scored as an ensemble '
          '(the equal-weight average of their probabilities, what `Ensemble` and `train_covid_ensemble` compute; each model\'s '
          'predictions are computed once and cached). Training seconds are those of the runs that trained them (summed for an ensemble).', '',
          '| name | models | validation accuracy | test accuracy % | macro F1 | macro AUC | training s |', '|---|---|---|---|---|---|---|']
    for n, r in res.items():
        t = r['test']
        md.append(f"| {n} | {', '.join(r['models'])} | {r['valid']['accuracy']:.3f} | {_ci(t['accuracy'], t['accuracy_ci'])} | "
                  f"{_ci(t['macro_f1'], t['macro_f1_ci'], False)} | {_ci(t['macro_auc'], t['macro_auc_ci'], False)} | "
                  f"{r.get('train_seconds') or '-'} |")
    groups = {}   # NAME_sN / NAME_seedN are seeds of NAME; NAME itself joins them as seed 42 when NAME_seedN exist
    for n, r in res.items():
        m = re.match(r'(.+?)_s(?:eed)?\d+$', n)
        g = m.group(1) if m else (n if any(re.fullmatch(re.escape(n) + r'_seed\d+', k) for k in res) else None)
        if g: groups.setdefault(g, []).append(r)
    for g, rs in groups.items():
        if len(rs) < 2: continue
        acc = [100 * r['test']['accuracy'] for r in rs]
        f1 = [r['test']['macro_f1'] for r in rs]
        md += ['', f"**{g}** over {len(rs)} seeds: test accuracy mean {np.mean(acc):.1f}% (range {min(acc):.1f}-{max(acc):.1f}), "
               f"macro F1 mean {np.mean(f1):.3f} (range {min(f1):.3f}-{max(f1):.3f})."]
    md += ['', 'Per class on the test split (one-vs-rest; 95% bootstrap intervals):', '',
           '| name | class | sensitivity % | specificity % | AUC |', '|---|---|---|---|---|']
    for n, r in res.items():
        for c, pc in r['test']['per_class'].items():
            md.append(f"| {n} | {c} | {_ci(pc['sensitivity'], pc['sensitivity_ci'])} | {_ci(pc['specificity'], pc['specificity_ci'])} | "
                      f"{_ci(pc['auc'], pc['auc_ci'], False)} |")
    md += ['', 'Confusion matrices on the test split (rows: true, columns: predicted):', '']
    md += [f"- {n} ({', '.join(r['test']['classes'])}): `{r['test']['confusion_matrix']}`" for n, r in res.items()]
    if {'best', 'best4'} <= set(res):
        md += ['', "**The `'best'` quality preset** (`QUALITY_PRESETS['best']`, `train_covid_ensemble(path, quality='best')`, "
               "`covid-fastai train --quality best`) is `best`: the defaults on `efficientnet_lite0`, `efficientnet_lite1` and "
               "`efficientnet_lite2` (seed 42 each), trained on one split and averaged. Alone on this CPU they train in 743, 1085 and 978 s, "
               "about 47 minutes in all, inside the 60-minute budget (the lite2 run trained alone; seeds 1 and 2 of lite0 took longer "
               "above because tests shared the CPU). It was chosen on validation among the ensembles that fit the budget: `best` 0.907 "
               "(macro F1 0.931), three lite0 seeds with lite2 0.876, two lite0 seeds with lite1 and lite2 0.899, the previous preset "
               "`best4` (three lite0 seeds and lite1, about 55 minutes) 0.860. Its validation accuracy ties with its lite0 member's (0.907, the "
               "luckiest of three lite0 seeds), so some of its lead on validation is that seed's luck; on the test split it scored 81.4% "
               "[73.8, 87.2], macro F1 0.852, macro AUC 0.951, against 73.6 to 79.8% (mean 77.3%) for single runs of the defaults and "
               "79.8% for `best4`. Over three seeds (`best`, `best_seed1`, `best_seed2`: every member trained with that seed) the preset "
               "scored 0.907, 0.884 and 0.876 on validation (mean 0.889 against 0.866 for the defaults) and 81.4, 85.3 and 78.3% on test "
               "(mean 81.7% against 77.3%; macro F1 0.852, 0.891, 0.827), with every COVID-19 test image found at 99.1 to 100% "
               "specificity. Lite2 alone (16.3 minutes, over the 15-minute budget of the defaults) scored 0.868, 0.860 and 0.860 on "
               "validation (mean 0.863, not above the defaults' 0.866) and 82.9, 86.0 and 78.3% on test (mean 82.4%). The targets of the "
               "accuracy issue are not reached: 3-class accuracy 79.8% (defaults, seed 42; mean 77.3%) against 87% and 81.4% (preset, "
               "seed 42; mean 81.7%, best seed 85.3%) against 90%, macro F1 0.840 (defaults) and 0.852 (preset; mean 0.856, seed 1 0.891) "
               "against 0.87; COVID-19 sensitivity 100% at 99% specificity meets its target (95% at 98%), but on these sources COVID-19 is "
               "the easy class (see the held-out source table). 23 of the preset's 24 test mistakes at seed 42 (and 27 of 28 at seed 2) "
               "are No_findings <-> Pneumonia, two NIH ChestX-ray14 classes whose labels were mined from reports."]
    return md + ['']

def plot(rows):
    import matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axs = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, key, title in ((axs[0], 'accuracy', 'Test accuracy'), (axs[1], 'covid_sensitivity', 'COVID-19 sensitivity')):
        names = [f"{r['run']}\n{r['arch']}" for r in rows]
        v = np.array([r[key] for r in rows]); lo = np.array([r[key + '_ci'][0] for r in rows]); hi = np.array([r[key + '_ci'][1] for r in rows])
        ax.bar(range(len(rows)), v, yerr=[v - lo, hi - v], capsize=4, color=['C0' if r['task'] == '3-class' else 'C1' for r in rows])
        ax.set_xticks(range(len(rows)), names, fontsize=7); ax.set_ylim(0, 1.05); ax.set_title(title + ' (95% CI)')
        if key == 'accuracy':
            ax.axhline(REFERENCE['three_class_accuracy'], ls='--', c='C0', lw=1, label='DarkCovidNet 3-class')
            ax.axhline(REFERENCE['binary_accuracy'], ls=':', c='C1', lw=1, label='DarkCovidNet binary')
            ax.legend(fontsize=7, loc='lower right')
        else: ax.axhline(0.95, ls='--', c='grey', lw=1)
    fig.tight_layout(); fig.savefig(OUT.parent/'quality.png', dpi=110); plt.close(fig)

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--data', default=str(here.resolve().parents[1]/'shared'/'data'/'xray3'))
    ap.add_argument('--runs', default='default,binary,head,progressive', help='comma-separated; `run@arch` for another backbone')
    ap.add_argument('--arch', default='efficientnet_lite0')
    ap.add_argument('--cache', default=None, help='folder for 256 px copies (default: train from the originals, as the defaults do)')
    ap.add_argument('--n-boot', type=int, default=2000)
    ap.add_argument('--set', default=None, help='tuning: JSON dict of train_covid_learner arguments overriding the run\'s, e.g. \'{"size": 192}\'')
    ap.add_argument('--reuse-weights-check', action='store_true', help='read which backbones have weights from the last run instead of trying each')
    ap.add_argument('--save', default=None, help='folder to save the trained model in (`save_covid_model`), e.g. to score ensembles later')
    ap.add_argument('--score', default=None, help='score saved models instead of training: comma-separated model folders (several: their ensemble); '
                    'written to bench/results/quality_scored/NAME.json, NAME given by --name')
    ap.add_argument('--name', default=None, help='name of a --score result (NAME_s<seed> results are summarised over seeds)')
    ap.add_argument('--seconds', type=float, default=None, help='training seconds of the scored models, for the report')
    ap.add_argument('--report', action='store_true', help='only assemble the report from the runs present')
    ap.add_argument('--one', default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        run, arch = a.one.split('@')
        return emit(one(run, arch, a.data, a.n_boot, a.cache, a.set and json.loads(a.set), a.save))
    if a.report: return report()
    if a.score:
        d = OUT.parent/'quality_scored'; d.mkdir(exist_ok=True)
        res = score(a.score.split(','), a.data, a.n_boot)
        if a.seconds is not None: res['train_seconds'] = a.seconds
        (d/f"{a.name or '+'.join(res['models'])}.json").write_text(json.dumps(res, indent=2))
        print({k: res['test'][k] for k in ('accuracy', 'accuracy_ci', 'macro_f1')})
        return
    from covid_fastai.models import ARCHS
    wfile = OUT.parent/'quality_weights.json'
    reuse = (a.set or a.reuse_weights_check) and wfile.exists()
    weights = json.loads(wfile.read_text()) if reuse else weights_available([k for k in ARCHS])
    OUT.mkdir(parents=True, exist_ok=True)
    for spec in a.runs.split(','):
        run, arch = (spec.split('@') + [a.arch])[:2]
        if weights.get(arch) is not True: print(f"skip {spec}: no ImageNet weights for {arch}: {weights.get(arch)}"); continue
        cmd = [sys.executable, __file__, '--one', f'{run}@{arch}', '--data', a.data, '--n-boot', str(a.n_boot)] + (['--cache', a.cache] if a.cache else []) \
              + (['--set', a.set] if a.set else []) + (['--save', a.save] if a.save else [])
        print('running', spec, flush=True)
        res = run_child(cmd, spec)
        tune = OUT.parent/'quality_tuning'
        if a.set: tune.mkdir(exist_ok=True); (tune/f"{run}@{arch}_{hashlib.md5(a.set.encode()).hexdigest()[:6]}.json").write_text(json.dumps(res, indent=2))
        else: (OUT/f"{run}@{arch}.json").write_text(json.dumps(res, indent=2))
        print({k: res[k] for k in ('run', 'arch', 'accuracy', 'covid_sensitivity', 'train_seconds')}, flush=True)
    if not a.set: report(weights)

if __name__ == '__main__': main()
