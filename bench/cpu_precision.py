#!/usr/bin/env python
"""Training-step speed on the CPU by numeric format: float32 or bfloat16 autocast, NCHW or channels-last memory format.

For each backbone (random init, 3 classes, batch 32 at 224 px, Adam, cross-entropy), forward + backward + optimizer step on
random tensors already in memory, so only the model's arithmetic is measured. The four formats take turns in rounds (a
shared machine's speed drifts) and the median of the rounds is reported. Its table is what `covid_learner`'s defaults on a
CPU rest on: channels-last always, bfloat16 autocast where the CPU has AMX units and the backbone gains from it
(`ArchSpec.cpu_bf16`). Writes bench/results/cpu_precision.{json,md}.

    python bench/cpu_precision.py [--archs mobilenet,resnet18,...] [--steps 3] [--rounds 3]
"""
import argparse, json, os, platform, sys, time
from pathlib import Path
import numpy as np
from _child import emit, run_child

RESULTS = Path(__file__).parent/'results'
FORMATS = [('fp32', 'nchw'), ('fp32', 'channels_last'), ('bf16', 'nchw'), ('bf16', 'channels_last')]

def one(arch, a):
    "images/s of a training step in each format, for one backbone (run in its own process)"
    import torch
    from covid_fastai.models import create_covid_model
    torch.manual_seed(0)
    m = create_covid_model(arch, 3, pretrained=False).train()
    opt = torch.optim.Adam(m.parameters(), 1e-4)
    x, y = torch.randn(a.bs, 3, a.size, a.size), torch.randint(0, 3, (a.bs,))
    def step(dtype, fmt):
        xx = x.contiguous(memory_format=torch.channels_last) if fmt == 'channels_last' else x
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=dtype == 'bf16'):
            loss = torch.nn.functional.cross_entropy(m(xx).float(), y)
        opt.zero_grad(); loss.backward(); opt.step()
    res = {f'{d} {f}': [] for d, f in FORMATS}
    for _ in range(a.rounds):
        for d, f in FORMATS:
            m.to(memory_format=torch.channels_last if f == 'channels_last' else torch.contiguous_format)
            step(d, f)                                   # warm-up: oneDNN builds its kernels for this format
            t = time.perf_counter()
            for _ in range(a.steps): step(d, f)
            res[f'{d} {f}'].append(a.bs * a.steps / (time.perf_counter() - t))
    out = dict(arch=arch, **{k: round(float(np.median(v)), 1) for k, v in res.items()})
    out['best'] = max(res, key=lambda k: np.median(res[k]))
    return out

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--archs', default='mobilenet,mobilenet_v3,resnet18,resnet50,vgg16,densenet121,efficientnet_b0,efficientnet_lite0')
    ap.add_argument('--bs', type=int, default=32); ap.add_argument('--size', type=int, default=224)
    ap.add_argument('--steps', type=int, default=3); ap.add_argument('--rounds', type=int, default=3)
    ap.add_argument('--report', action='store_true', help='only rewrite the Markdown table from the JSON (with the current `cpu_bf16` flags)')
    ap.add_argument('--one', default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one: return emit(one(a.one, a))
    import torch
    from covid_fastai.learner import cpu_has_amx
    from covid_fastai.models import get_arch
    if a.report:
        d = json.loads((RESULTS/'cpu_precision.json').read_text())
        for r in d['rows']: r['cpu_bf16'] = get_arch(r['arch']).cpu_bf16
        return write(d['env'], d['rows'])
    rows = []
    for arch in a.archs.split(','):
        cmd = [sys.executable, __file__, '--one', arch] + [f'--{k}={getattr(a, k)}' for k in ('bs', 'size', 'steps', 'rounds')]
        row = run_child(cmd, arch); row['cpu_bf16'] = get_arch(arch).cpu_bf16
        rows.append(row); print(row, flush=True)
    env = dict(cpu=platform.processor() or platform.machine(), cores=os.cpu_count(), threads=torch.get_num_threads(), amx=cpu_has_amx(),
               torch=torch.__version__, bs=a.bs, size=a.size, steps=a.steps, rounds=a.rounds)
    write(env, rows)

def write(env, rows):
    "bench/results/cpu_precision.{json,md}"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS/'cpu_precision.json').write_text(json.dumps(dict(env=env, rows=rows), indent=2))
    keys = [f'{d} {f}' for d, f in FORMATS]
    md = ['# Training step on the CPU: float32 or bfloat16, NCHW or channels-last', '',
          f"images/s of forward + backward + Adam step, batch {env['bs']} at {env['size']} px on tensors in memory, random init; "
          f"{env['cores']} cores, {env['threads']} threads, AMX units: {'yes' if env['amx'] else 'no'}, torch {env['torch']}. "
          f"Median of {env['rounds']} rounds in which the four formats take turns, {env['steps']} steps each after a warm-up step.", '',
          '| arch | ' + ' | '.join(keys) + ' | best | best / fp32 nchw | `cpu_bf16` (library default) |', '|---|' + '---|' * (len(keys) + 3)]
    for r in rows:
        md.append(f"| {r['arch']} | " + ' | '.join(f"**{r[k]}**" if k == r['best'] else str(r[k]) for k in keys) +
                  f" | {r['best']} | {r[r['best']] / r['fp32 nchw']:.2f}x | {r['cpu_bf16']} |")
    md += ['', '`covid_learner` trains in channels-last by default, and in bfloat16 autocast on a CPU with AMX units when the backbone\'s '
           '`ArchSpec.cpu_bf16` is set (`bf16=` overrides it). On CPUs without AMX units it stays off: the gain was measured only on a CPU with them.']
    (RESULTS/'cpu_precision.md').write_text('\n'.join(md) + '\n')
    print('\n'.join(md))

if __name__ == '__main__': main()
