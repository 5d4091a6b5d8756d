#!/usr/bin/env python
"""Training throughput of the library's Learner against a hand-written PyTorch loop, and where the time goes.

For each architecture (random init: speed does not depend on the weights), in its own process (so that peak memory is
its own), on real JPEGs read from disk:

- `library`: `covid_dls` (fastai DataBlock, `xray` augmentation preset) + `covid_learner` (all layers trainable, Adam), steady-state
  images/s of the training loop (first batches skipped);
- `plain`: a torch `Dataset` (PIL decode, torchvision Resize / RandomHorizontalFlip / RandomRotation / ColorJitter / Normalize)
  + `DataLoader` with the same batch size and workers, the same model, Adam and cross-entropy, a plain loop;
- `library_data`, `plain_data`: the two DataLoaders alone, no model (taking turns in each round, like the others);
- `model_step`: forward + backward + optimizer step on random tensors already in memory: the ceiling.

- `library_fastai_opt`: the library with fastai's own Python `Adam` (what the optimizer costs);
- a profile of each training step: ms per batch waiting for data, in forward, loss, backward, optimizer and (the library)
  fastai's callbacks.

Also peak RSS (and peak GPU memory on a GPU). Writes bench/results/speed_cpu_<processor kind>.json/.md/.png (one file per
processor kind: with and without AMX units the numbers differ) or speed_gpu.*.

    python bench/speed.py --data ../shared/data/xray3 [--archs mobilenet,efficientnet_lite0,resnet18] [--bs 32] [--batches 16] [--rounds 5]
"""
import argparse, json, os, platform, re, resource, sys, tempfile, time
from pathlib import Path
import numpy as np
from _child import emit, run_child

RESULTS = Path(__file__).parent/'results'

def _steady(times, skip):
    "images/s over the batches after the first `skip`"
    ts = times[skip:]
    return sum(n for n, _ in ts) / sum(t for _, t in ts)

def _timed_iter(it, n_batches, step=None, sync=lambda: None):
    out, t = [], time.perf_counter()
    for i, b in enumerate(it):
        if step is not None: step(b)
        sync()
        now = time.perf_counter(); out.append((len(b[0]), now - t)); t = now
        if i + 1 >= n_batches: break
    return out

def one(arch, files, labels, a):
    "All measurements for one architecture (run in its own process)"
    import torch, torch.nn as nn, pandas as pd
    from PIL import Image
    import torchvision.transforms as T
    from covid_fastai.data import Layout
    from covid_fastai.dataloaders import covid_dls
    from covid_fastai.learner import covid_learner
    from covid_fastai.models import create_covid_model, get_arch
    dev = 'cuda' if torch.cuda.is_available() and not a.cpu else 'cpu'
    sync = torch.cuda.synchronize if dev == 'cuda' else (lambda: None)
    torch.manual_seed(0)
    spec = get_arch(arch)
    mean, std = spec.stats
    classes = sorted(set(labels))
    res = dict(arch=arch, device=torch.cuda.get_device_name() if dev == 'cuda' else f'cpu ({os.cpu_count()} cores)', bs=a.bs,
               size=a.size, workers=a.workers, batches=a.batches, skip=a.skip)
    # library path
    df = pd.DataFrame(dict(fname=files, label=labels, patient=None, split=['train'] * (len(files) - 16) + ['valid'] * 16))
    lay = Layout(Path(files[0]).parents[1], df)
    dls = covid_dls(lay, size=a.size, bs=a.bs, num_workers=a.workers, stats=(mean, std), aug='xray', device=dev)
    learn = covid_learner(dls, arch, pretrained=False)
    learn.unfreeze()
    from fastai.callback.core import Callback, CancelFitException
    from fastai.optimizer import Adam
    EVENTS = ('before_batch', 'after_pred', 'after_loss', 'after_backward', 'after_step', 'after_batch')
    class Marks(Callback):
        "Time stamps of each training batch's events: `first` runs before every other callback of an event, the other after them"
        def __init__(self, first, store): self.order, self.first, self.store = (-1000 if first else 1000), first, store
        def _mark(self, ev):
            if not self.training: return
            if ev != 'before_batch': sync()   # (the GPU's work of the phase is done)
            self.store.setdefault(('first' if self.first else 'last', ev), []).append(time.perf_counter())
    for ev in EVENTS: setattr(Marks, ev, lambda self, ev=ev: self._mark(ev))
    class Timer(Callback):
        "Time each training batch (after the GPU has finished it) and stop after `a.batches`"
        order = 1001
        def before_fit(self): self.t, self.rec = time.perf_counter(), []
        def after_batch(self):
            if not self.training: return
            sync(); now = time.perf_counter(); self.rec.append((len(self.xb[0]), now - self.t)); self.t = now
            if len(self.rec) >= a.batches: raise CancelFitException()
    def library_phases(st):
        "ms per batch of each phase of the library's step, from the marks, over the steady batches"
        f, l = (lambda ev: np.array(st['first', ev])), (lambda ev: np.array(st['last', ev]))
        n = min(len(v) for v in st.values())
        f_, l_ = (lambda ev: f(ev)[:n]), (lambda ev: l(ev)[:n])
        ph = dict(data=f_('before_batch')[1:] - l_('after_batch')[:-1],
                  forward=f_('after_pred') - l_('before_batch'), loss=f_('after_loss') - l_('after_pred'),
                  backward=f_('after_backward') - l_('after_loss'), optimizer=f_('after_step') - l_('after_backward'),
                  callbacks=sum(l_(ev) - f_(ev) for ev in EVENTS) + (f_('after_batch') - l_('after_step')))
        ph['data'] = np.concatenate([[np.nan], ph['data']])
        return {k: v[a.skip:] * 1000 for k, v in ph.items()}
    def run_library(opt_func=None):
        "Steady images/s of `learn.fit` and its phases; `opt_func`: another optimizer for this run (`learn`'s own is put back)"
        tm, st = Timer(), {}
        own = learn.opt_func
        if opt_func is not None: learn.opt_func = opt_func
        learn.opt = None   # (made again by `fit` from `opt_func`)
        try:
            with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3, cbs=[tm, Marks(True, st), Marks(False, st)])
        finally: learn.opt_func, learn.opt = own, None
        return _steady(tm.rec, a.skip), library_phases(st)
    # plain PyTorch path
    tf = T.Compose([T.Resize((a.size, a.size)), T.RandomHorizontalFlip(), T.RandomRotation(10), T.ColorJitter(0.2, 0.2),
                    T.ToTensor(), T.Normalize(mean, std)])
    class DS(torch.utils.data.Dataset):
        def __len__(self): return len(files) - 16
        def __getitem__(self, i):
            with Image.open(files[i]) as im: x = tf(im.convert('RGB'))
            return x, classes.index(labels[i])
    dl = torch.utils.data.DataLoader(DS(), batch_size=a.bs, shuffle=True, num_workers=a.workers, drop_last=True,
                                     pin_memory=dev == 'cuda')
    # The plain loop and the model step use the numeric format the library chose: channels-last, and float16 autocast on a
    # GPU or bfloat16 autocast on a CPU with AMX units (for backbones that gain from it), as `covid_learner` sets them
    from fastai.callback.fp16 import MixedPrecision
    from fastai.callback.channelslast import ChannelsLast
    amp = [cb.amp_mode.value for cb in learn.cbs if isinstance(cb, MixedPrecision)]
    amp_dtype = {'fp16': torch.float16, 'bf16': torch.bfloat16}[amp[0]] if amp else None
    chl = any(isinstance(cb, ChannelsLast) for cb in learn.cbs)
    res.update(precision=amp[0] if amp else 'fp32', channels_last=chl)
    model = create_covid_model(arch, n_out=len(classes), pretrained=False).to(dev)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    lossf = nn.CrossEntropyLoss()
    if chl: model = model.to(memory_format=torch.channels_last)
    scaler = torch.amp.GradScaler(enabled=amp_dtype == torch.float16)
    plain_marks = []
    def step(b):
        t0 = time.perf_counter()
        x, y = b[0].to(dev, non_blocking=True), b[1].to(dev, non_blocking=True)
        if chl: x = x.to(memory_format=torch.channels_last)
        with torch.autocast(dev, dtype=amp_dtype, enabled=amp_dtype is not None):
            out = model(x)
            sync(); t1 = time.perf_counter()
            loss = lossf(out.float(), y)
        sync(); t2 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward(); sync(); t3 = time.perf_counter()
        scaler.step(opt); scaler.update(); sync(); t4 = time.perf_counter()
        plain_marks.append((t0, t1, t2, t3, t4))
    def plain_phases(ends):
        "ms per batch of each phase of the plain loop (data: from the end of one step to the start of the next)"
        m, ends = np.array(plain_marks), np.array(ends)
        data = np.concatenate([[np.nan], m[1:, 0] - ends[:-1]])
        ph = dict(data=data, forward=m[:, 1] - m[:, 0], loss=m[:, 2] - m[:, 1], backward=m[:, 3] - m[:, 2], optimizer=m[:, 4] - m[:, 3],
                  callbacks=np.zeros(len(m)))
        return {k: v[a.skip:] * 1000 for k, v in ph.items()}
    model.train()
    xb, yb = torch.randn(a.bs, 3, a.size, a.size, device=dev), torch.randint(0, len(classes), (a.bs,), device=dev)
    # The three measurements take turns, `a.rounds` times, so that a slow spell of the machine hits all of them alike;
    # each is reported as the median over the rounds, and the ratios as medians of the per-round ratios.
    # `library_fastai_opt`: the library with fastai's own Python `Adam` instead of its default (PyTorch's fused `AdamW` in
    # fastai's `OptimWrapper`): what the optimizer costs. Each measurement also records its phases (ms per batch).
    rounds = dict(library=[], library_fastai_opt=[], plain=[], model_step=[], library_data=[], plain_data=[])
    phases = {k: [] for k in ('library', 'library_fastai_opt', 'plain')}
    for r in range(a.rounds):
        for k, f in (('library', None), ('library_fastai_opt', Adam)):
            ips, ph = run_library(f); rounds[k].append(ips); phases[k].append(ph)
        plain_marks.clear()
        tm = _timed_iter(dl, a.batches, step, sync)
        rounds['plain'].append(_steady(tm, a.skip))
        ends = np.array([m[4] for m in plain_marks]); phases['plain'].append(plain_phases(ends))
        rounds['model_step'].append(_steady(_timed_iter(((xb, yb) for _ in iter(int, 1)), a.batches, step, sync), a.skip))
        rounds['library_data'].append(_steady(_timed_iter(dls.train, a.batches), a.skip))
        rounds['plain_data'].append(_steady(_timed_iter(dl, a.batches), a.skip))
    med = lambda v: float(np.median(v))
    for k, v in rounds.items(): res[k] = round(med(v), 1)
    res['rounds'] = {k: [round(x, 1) for x in v] for k, v in rounds.items()}
    res['library_vs_plain'] = round(med([l / p for l, p in zip(rounds['library'], rounds['plain'])]), 3)
    res['library_vs_ceiling'] = round(med([l / c for l, c in zip(rounds['library'], rounds['model_step'])]), 3)
    res['data_vs_plain'] = round(med([l / p for l, p in zip(rounds['library_data'], rounds['plain_data'])]), 3)
    res['fastai_opt_vs_plain'] = round(med([l / p for l, p in zip(rounds['library_fastai_opt'], rounds['plain'])]), 3)
    # median ms per batch of each phase, over the steady batches of all rounds
    res['phases_ms'] = {k: {ph: round(float(np.nanmedian(np.concatenate([r[ph] for r in v]))), 1) for ph in v[0]} for k, v in phases.items()}
    res['peak_rss_mb'] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 0)
    if dev == 'cuda': res['peak_gpu_mb'] = round(torch.cuda.max_memory_allocated() / 2**20, 0)
    return res

def processor() -> tuple:
    "The CPU's model name and whether it has AMX units (bfloat16 matrix tiles)"
    name = platform.processor() or platform.machine()
    try:
        info = Path('/proc/cpuinfo').read_text()
        name = next(l.split(':', 1)[1].strip() for l in info.splitlines() if l.startswith('model name'))
        amx = ' amx_bf16' in info or ' amx_tile' in info
    except (OSError, StopIteration): amx = False
    return name, amx

def slug(name:str) -> str:
    "A file-name part for a processor kind: 'AMD EPYC' -> 'amd-epyc'; Intel's '(R)', '(TM)', 'CPU @ 2.10GHz' dropped"
    import re
    name = re.sub(r'\((R|TM|tm|r)\)|CPU|@.*|Processor', ' ', name)
    return re.sub(r'[^a-z0-9]+', '-', name.lower()).strip('-') or 'cpu'

def plot(rows, fn, dev):
    "Grouped bars per architecture: data loading alone, library, plain loop, model step"
    import matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    keys = [('library', 'library (fastai)'), ('plain', 'plain PyTorch loop'), ('model_step', 'model step on tensors in memory (ceiling)')]
    fig, ax = plt.subplots(figsize=(7, 3.4))
    w = 0.8 / len(keys)
    for i, (k, lab) in enumerate(keys):
        ax.bar(np.arange(len(rows)) + i * w, [r[k] for r in rows], w, label=lab)
    ax.set_xticks(np.arange(len(rows)) + w * (len(keys) - 1) / 2, [r['arch'] for r in rows])
    ax.set_ylabel('training images / s'); ax.set_title(f'Training throughput, {dev}', fontsize=10); ax.legend(fontsize=7)
    fig.tight_layout(); fig.savefig(fn, dpi=110); plt.close(fig)

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--data', default=str(Path(__file__).resolve().parents[2]/'shared'/'data'/'xray3'))
    ap.add_argument('--archs', default='mobilenet,efficientnet_lite0,resnet18')
    ap.add_argument('--bs', type=int, default=32); ap.add_argument('--size', type=int, default=224)
    ap.add_argument('--batches', type=int, default=16); ap.add_argument('--skip', type=int, default=2)
    ap.add_argument('--rounds', type=int, default=5, help='rounds in which the measurements take turns (medians reported): 5 of 16 batches settle the ratios to about 0.05 on a shared 2-core machine, about 35 min')
    ap.add_argument('--workers', type=int, default=os.cpu_count())
    ap.add_argument('--cpu', action='store_true', help='stay on the CPU even with a GPU')
    ap.add_argument('--out', default=str(RESULTS), help='folder of the results (speed[_gpu].json/.md/.png)')
    ap.add_argument('--one', default=None, help=argparse.SUPPRESS)
    ap.add_argument('--report', default=None, help='only rewrite the .md and .png of this results .json')
    a = ap.parse_args()
    if a.report: return report(Path(a.report))
    import pandas as pd
    lab = pd.read_csv(Path(a.data)/'labels.csv')
    files = [str(Path(a.data)/p) for p in lab.path]
    labels = lab.label.tolist()
    if a.one:
        return emit(one(a.one, files, labels, a))
    rows = []
    for arch in a.archs.split(','):
        cmd = [sys.executable, __file__, '--one', arch] + [f'--{k}={v}' for k, v in (('data', a.data), ('bs', a.bs), ('size', a.size),
               ('batches', a.batches), ('skip', a.skip), ('workers', a.workers), ('rounds', a.rounds))] + (['--cpu'] if a.cpu else [])
        rows.append(run_child(cmd, arch)); print(rows[-1], flush=True)
    dev = rows[0]['device']
    proc, amx = processor()
    tag = f'_cpu_{slug(proc)}' if dev.startswith('cpu') else '_gpu'   # one results file per processor kind
    env = dict(python=platform.python_version(), device=dev, processor=proc, amx=amx,
               bf16=sorted({r['arch'] for r in rows if r['precision'] == 'bf16'}), data=Path(a.data).name, n_images=len(files),
               command='python bench/speed.py ' + ' '.join('DATA' if v == a.data else re.sub(r'^--data=.*', '--data=DATA', v) for v in sys.argv[1:]))
    env.update(bs=a.bs, size=a.size, workers=a.workers, batches=a.batches, skip=a.skip, rounds=a.rounds)
    res_dir = Path(a.out); res_dir.mkdir(parents=True, exist_ok=True)
    fn = res_dir/f'speed{tag}.json'
    fn.write_text(json.dumps(dict(env=env, rows=rows), indent=2))
    report(fn)

def report(fn:Path):
    "Write the markdown table, the profile and the plot of the results file `fn` (.md and .png beside it)"
    res = json.loads(Path(fn).read_text())
    env, rows = res['env'], res['rows']
    gpu = not env['device'].startswith('cpu')
    hdr = ['arch', 'precision', 'library img/s', 'plain loop img/s', 'library / plain', 'library data img/s', 'plain data img/s', 'data: library / plain',
           'model step img/s (ceiling)', 'library / ceiling', 'peak RSS MB'] + (['peak GPU MB'] if gpu else [])
    md = [f"# Training throughput on {env['device']}: {env['processor']}", '',
          f"Processor: {env['processor']}; AMX units: {'yes' if env['amx'] else 'no'}; bfloat16 autocast used for: "
          f"{', '.join(env['bf16']) or 'none (every backbone in float32)'}. Command: `{env['command']}` (DATA: a local copy of {env['data']}).", '',
          f"Batch {env['bs']}, {env['size']} px, {env['workers']} DataLoader workers, real JPEGs from {env['data']}; steady state over batches "
          f"{env['skip'] + 1}-{env['batches']}, median of {env['rounds']} rounds in which the measurements take turns. Random init, all "
          "layers trained, Adam (the library: its default, PyTorch's fused `AdamW` in fastai's `OptimWrapper`; the plain loop: "
          "`torch.optim.Adam`). All use the numeric format `covid_learner` picks on this device (precision column; channels-last "
          f"memory format: {', '.join(sorted({str(r['channels_last']) for r in rows}))}).", '',
          '| ' + ' | '.join(hdr) + ' |', '|' + '---|' * len(hdr)]
    for r in rows:
        md.append(f"| {r['arch']} | {r['precision']} | {r['library']} | {r['plain']} | {r['library_vs_plain']} | {r['library_data']} | {r['plain_data']} | {r.get('data_vs_plain', round(r['library_data'] / r['plain_data'], 3))} | "
                  f"{r['model_step']} | {r['library_vs_ceiling']} | {r['peak_rss_mb']:.0f} |" + (f" {r['peak_gpu_mb']:.0f} |" if gpu else ''))
    md += ['', 'Rounds (images/s): ' + '; '.join(f"{r['arch']}: " + ', '.join(f"{k} {'/'.join(str(x) for x in v)}" for k, v in r['rounds'].items())
                                                for r in rows) + '.',
           '', "With fastai's own Python `Adam` instead of the library's default (`library_fastai_opt`), library / plain was "
           + ', '.join(f"{r['arch']} {r['fastai_opt_vs_plain']} ({r['library_fastai_opt']} images/s)" for r in rows) + '.',
           '', '## Profile of one training step (ms per batch, median over the steady batches of all rounds)', '',
           '`data`: waiting for the next batch; `forward`, `loss`, `backward`, `optimizer`: each phase to its end; `callbacks`: '
           "the time inside fastai's callbacks (the library only). The library's phases are cut at fastai's events by two callbacks, "
           "one running before every other callback of an event and one after them; the plain loop's at the same points.", '',
           '| arch | run | data | forward | loss | backward | optimizer | callbacks | sum |', '|---|---|---|---|---|---|---|---|---|']
    for r in rows:
        for k, ph in r['phases_ms'].items():
            md.append(f"| {r['arch']} | {k} | " + ' | '.join(f"{ph[p]:.1f}" for p in ('data', 'forward', 'loss', 'backward', 'optimizer', 'callbacks'))
                      + f" | {sum(ph.values()):.0f} |")
    md += ['', '## Where the time goes', '', *NOTES]
    Path(fn).with_suffix('.md').write_text('\n'.join(md) + '\n')
    plot(rows, Path(fn).with_suffix('.png'), env['device'])
    print('\n'.join(md))

NOTES = [  # what the profiles above and the earlier measurements (`cpu_precision.md`, `data_loading.md`) say, for the reader's choices
    '- **Forward and backward are the step.** On a CPU they take 97-99% of a training step, in the library as in the plain loop; '
    'waiting for data is a few ms per batch (the workers keep ahead), the loss under 1 ms. Differences between the library\'s '
    'forward/backward and the plain loop\'s on the same model are the cores the DataLoader workers take from the compute threads '
    '(next point) and the machine\'s noise.',
    '- **The workers share the cores.** With 2 cores, 2 DataLoader workers take CPU time from the 2 compute threads. The library\'s '
    'pipeline does more per image than the plain one (fastai\'s affine rotate/zoom/flip and lighting on whole batches in float, '
    'in the workers, against torchvision\'s per-image PIL rotate and colour jitter): its data loader alone delivers fewer images/s '
    '(the data columns), so it takes more of the cores while training. A 256 px cache (`cache=`) makes decoding about 3x cheaper '
    'for large originals (`data_loading.md`); `num_workers=0` gives the compute threads the cores back at the price of waiting for data.',
    '- **The optimizer.** fastai\'s Python `Adam` steps the parameter tensors one by one (162 tensors for `mobilenet`, 153 for '
    '`efficientnet_lite0`, 66 larger ones for `resnet18`); PyTorch\'s fused `AdamW` steps them in one call: 11-20 ms against 4-12 ms '
    'per step in the profile above, about 1% of a training step on this CPU (a larger share where steps are short, on a GPU). '
    '`covid_learner` uses the fused one in fastai\'s `OptimWrapper`, with fastai\'s hyper-parameters.',
    '- **Tensor subclasses.** fastai\'s batches are `TensorImage`/`TensorCategory`; passed through a model, every operation goes '
    'through their Python `__torch_function__` (measured 1.3-1.6x slower steps). `covid_learner` adds the `PlainTensors` callback, which '
    'hands the model and the loss plain views.',
    '- **Numeric format.** On CPUs with Intel AMX units a bfloat16 training step is 1.7-2.9x faster than a float32 one for most '
    'backbones (`cpu_precision.md`); `covid_learner` trains in bfloat16 autocast there (`ArchSpec.cpu_bf16`) and in channels-last '
    'everywhere. On CPUs without AMX (AMD EPYC here) every backbone trains in float32. The plain loop and the ceiling use the same '
    'format, so the ratios compare like with like.',
    '- **JPEG decoding.** The DataLoaders decode JPEGs at reduced scale (`load_xray(draft=size)`, Pillow\'s DCT scaling), and '
    '`preprocess` does the same, so inference sees the same pixels.',
    '- **One channel.** A gray X-ray is read, resized, collated and augmented as one channel and copied into the three the backbones '
    'take just before `Normalize` (`XrayBlock(gray=True)`, `ThreeChannels`), the same batches as with three channels all along. '
    'What the library\'s pipeline still spends more than the plain one is fastai\'s affine warp: `F.affine_grid` alone takes about 0.67 ms '
    'per 224 px image on one core of this CPU (a batched matrix product with an inner size of 3), where one matrix product of the '
    'base grid with all the batch\'s matrices gives the same grid to 2.4e-7 in 0.07 ms: a candidate for PyTorch or fastai, '
    'not patched here.',
    '- **Noise.** This is a shared virtual machine: the same step varies by +-20% from minute to minute, which is why the '
    'measurements take turns and the medians of the rounds are reported; a ratio within about 0.05 of another is within that noise.']

if __name__ == '__main__': main()
