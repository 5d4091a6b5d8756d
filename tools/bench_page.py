#!/usr/bin/env python
"""Write the docs page `nbs/23_benchmarks.ipynb` from the results of the scripts in bench/ (markdown tables and plots).

The page is generated, not written by hand, so it always shows what the scripts last measured; the plots are copied to
nbs/images/ for the docs. Run it after any bench/ script:

    python tools/bench_page.py [--check]
"""
import argparse, hashlib, json, re, shutil, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RES, NBS = ROOT/'bench'/'results', ROOT/'nbs'
OUT = NBS/'23_benchmarks.ipynb'
SECTIONS = [  # (results stem, heading, plot or None, what it is)
    ('demo', 'The demo learns', None,
     '`bench/demo.py`: `covid-fastai demo` on the bundled NIH sample, one seed (and so one patient split) per run: the test '
     'result against chance, and how long a user waits for it.'),
    ('quality', 'Accuracy on real chest X-rays', 'quality.png',
     '`bench/quality.py`: `train_covid_learner`\'s defaults on the patient-grouped split of xray3, against the published DarkCovidNet numbers.'),
    ('source_holdout', 'A source held out of training', None,
     '`bench/source_holdout.py`: COVID-19 sensitivity on X-rays of a source the model never saw (the shortcut tutorial\'s method), '
     'per preprocessing setting.'),
    ('speed_cpu_*', 'Training speed on the CPU', 'speed_cpu_*.png',
     '`bench/speed.py` (one results file per processor kind): images per second of the library\'s `Learner` against a hand-written PyTorch loop with the same model, '
     'images, augmentation, batch size, optimizer and workers, and where the time goes.'),
    ('cpu_precision', 'Numeric formats on the CPU', None,
     '`bench/cpu_precision.py`: a training step in float32 or bfloat16 autocast, NCHW or channels-last, per backbone: what '
     '`covid_learner`\'s defaults on a CPU rest on.'),
    ('speed_gpu', 'Training speed on a GPU', 'speed_gpu.png', '`bench/speed.py` on a lent GPU (mixed precision, channels-last).'),
    ('latency', 'Inference latency', None, '`bench/latency.py`: one image at a time, PyTorch against ONNX Runtime.'),
    ('predict', 'Prediction throughput', None, '`bench/predict.py`: images per second of a saved model predicting many X-rays: the library\'s '
     'path, the one it replaced (the library\'s code of before, taken from git and run side by side), ONNX Runtime, a plain thread-pool script, and the model alone (the ceiling).'),
    ('predict_scale', 'Prediction at corpus scale', None, '`bench/predict_scale.py`: peak memory of `covid-fastai predict` from 2,000 to 100,000 files '
     '(each run a process of its own, wall time including start-up and model loading), and a run stopped with Ctrl-C half way then resumed.'),
    ('corpus', 'A corpus of 100,000 images', None, '`bench/corpus.py`: wall time and peak memory of each step before training on 100,000 files '
     '(image check, the same check remembered, the 256 px cache, the DataLoaders, the first batch).'),
    ('data_loading', 'Data loading from a large corpus', None, '`bench/data_loading.py`: training-loader throughput from the originals and from the 256 px cache.'),
    ('recipes', 'Recipes: head only against progressive unfreezing', None, '`bench/recipes.py`: the freeze/unfreeze ladder stage by stage.'),
    ('web_load', 'The web app under hostile load', None, '`bench/web_load.py`: good X-rays, bad uploads and 20 MB many-field requests from 16 threads, '
     'with `/health` polled throughout and the server\'s memory sampled.'),
]

def _cell(kind, text):
    cid = hashlib.sha1(text.encode()).hexdigest()[:8]
    return dict(cell_type=kind, id=cid, metadata={}, source=text.splitlines(keepends=True))

def _expand(sections):
    "A section whose stem has a `*` (one results file per processor kind) becomes one section per file, headed by the processor"
    for stem, head, png, what in sections:
        if '*' not in stem: yield stem, head, png, what; continue
        for md in sorted(RES.glob(f'{stem}.md')):
            kind = md.stem[len(stem) - 1:]
            env = json.loads(md.with_suffix('.json').read_text()).get('env', {}) if md.with_suffix('.json').exists() else {}
            yield md.stem, f"{head}: {env.get('processor', kind)}", png.replace('*', kind) if png else None, what

def page() -> dict:
    cells = [_cell('markdown', '# Benchmarks\n\n> Accuracy on real chest X-rays against the published numbers, training speed against a plain '
                   'PyTorch loop, inference latency and data loading: what the scripts in `bench/` measured, on which machine.'),
             _cell('markdown', 'Every number here comes from a script under `bench/` that writes JSON and a Markdown table to '
                   '`bench/results/`; this page is generated from them by `tools/bench_page.py`. None of it is a test: run the scripts '
                   'again to measure your own machine. The X-rays are xray3, a local copy of 905 images of the DarkCovidNet sources (`--data PATH` of each script), '
                   'which is not part of the repository.\n\n**Research and teaching tool, not a medical device.**')]
    for stem, head, png, what in _expand(SECTIONS):
        md = RES/f'{stem}.md'
        if not md.exists():
            if stem == 'speed_gpu': cells.append(_cell('markdown', f'## {head}\n\nNot measured yet: no GPU was lent to the sessions that ran the benchmarks. '
                                                       '`python bench/speed.py` on a CUDA machine writes `bench/results/speed_gpu.{json,md,png}`.'))
            continue
        body = re.sub(r'^# .*\n', '', md.read_text(), count=1)
        body = re.sub(r'^(#+) ', lambda m: '#' + m.group(1) + ' ', body, flags=re.M)  # one level down
        text = f'## {head}\n\n{what}\n\n{body.strip()}'
        if png and (RES/png).exists():
            shutil.copy(RES/png, NBS/'images'/f'bench_{png}')
            text += f'\n\n![{head}](images/bench_{png})'
        cells.append(_cell('markdown', text))
    return dict(cells=cells, metadata=dict(kernelspec=dict(display_name='python3', language='python', name='python3')),
                nbformat=4, nbformat_minor=5)

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--check', action='store_true', help='fail if the page is out of date instead of writing it')
    a = ap.parse_args()
    text = json.dumps(page(), indent=1, ensure_ascii=False) + '\n'
    if a.check:
        if not OUT.exists() or OUT.read_text() != text: sys.exit(f'{OUT} is out of date: run python tools/bench_page.py')
    else: OUT.write_text(text); print(f'wrote {OUT}')
