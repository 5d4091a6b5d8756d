#!/usr/bin/env python
"""Run notebooks and keep their outputs: the tutorials carry the outputs of real runs.

Every code cell runs, those flagged `slow` included, from the notebook's own folder (as in Jupyter), except cells marked
`#| eval: false` (installs and downloads meant for Colab). Stops at the first error and leaves the notebook unchanged then.
Images over 60 kB are stored as JPEG at most 720 px wide, so notebooks stay small. The notebook is cleaned with `nbdev-clean`
afterwards.

    python tools/run_notebook.py nbs/tutorials/tiny_set.ipynb [more.ipynb ...]
    python tools/run_notebook.py --module nbs/12_train.ipynb [...]   # a module notebook: as nbdev-test runs it (flags honoured)

`--module` keeps the outputs of a module notebook's examples (stage tables, plots) so that its docs page shows results: it runs
`nbdev-test --save` (cells flagged `slow` or `cuda` are skipped, as in the tests), drops warnings (stderr), shrinks images, and
fails if an output shows a path of the machine it ran on.
"""
import base64, io, os, re, subprocess, sys, time
from pathlib import Path
from fastcore.nbio import read_nb, write_nb
from execnb.shell import CaptureShell

_NO_EVAL = re.compile(r'^\s*#\|\s*eval:\s*false\s*$', re.M)

def skip(cell) -> bool:
    "Markdown cells, and code cells marked `#| eval: false`"
    return cell.cell_type != 'code' or bool(_NO_EVAL.search(''.join(cell.source)))

_BAR = re.compile(r'[█\s]*(?:[^|\n\r]{0,40}:\s*)?\|[█\-]*\|\s*[\d.]+%\s*\[[^\]\n]*\][ \t]*')

# A warning as Python prints it: `/abs/path/module.py:418: UserWarning: message`, then the source line that raised it
_WARN_AT = re.compile(r'^[^\n]*?\S+\.py:\d+: (\w*Warning: )', re.M)
_WARN_SRC = re.compile(r'^\s+(?:warn|warnings\.warn)\(.*$\n?', re.M)

def warning_text(text:str) -> str:
    "Warnings without the file and line of the library code that raised them (a path of the machine) and without that code"
    return _WARN_SRC.sub('', _WARN_AT.sub(r'\1', text))

def drop_bars(cell):
    "Remove fastprogress bars (which print as text outside Jupyter) from the cell's stream outputs, and where warnings came from"
    outs = []
    for o in cell.get('outputs', []):
        if o.get('output_type') == 'stream':
            text = _BAR.sub('', ''.join(o['text']) if isinstance(o['text'], list) else o['text']).replace('\r', '')
            if o.get('name') == 'stderr': text = warning_text(text)
            if 'train_loss' in text:  # fastai's epoch table printed as text: one line per epoch
                text = re.sub(r'Epoch \d+/\d+ :', '', text).replace('█', '')
                text = re.sub(r'(\d\d:\d\d)[ \t]*', r'\1\n', re.sub(r'\btime\b[ \t]*', 'time\n', text))
            text = '\n'.join(l.strip() if 'train_loss' in text else l.rstrip() for l in text.split('\n') if l.strip(' █')).strip('\n')
            if not text: continue
            o['text'] = text + '\n'
        outs.append(o)
    cell['outputs'] = outs

def shrink(nb, max_bytes=60_000, width=720, quality=80):
    "Drop progress bars; replace large PNG outputs by JPEGs at most `width` px wide"
    from PIL import Image
    for cell in nb.cells:
        if cell.cell_type == 'code': drop_bars(cell)
        for o in cell.get('outputs', []):
            png = o.get('data', {}).get('image/png')
            if not png or len(png) < max_bytes: continue
            im = Image.open(io.BytesIO(base64.b64decode(''.join(png) if isinstance(png, list) else png)))
            if im.width > width: im = im.resize((width, round(im.height * width / im.width)), Image.Resampling.LANCZOS)
            if im.mode in ('RGBA', 'LA', 'P'):
                bg = Image.new('RGB', im.size, 'white'); bg.paste(im.convert('RGBA'), mask=im.convert('RGBA').split()[-1]); im = bg
            buf = io.BytesIO(); im.convert('RGB').save(buf, 'JPEG', quality=quality, optimize=True)
            del o['data']['image/png']
            o['data']['image/jpeg'] = base64.b64encode(buf.getvalue()).decode()
            o.setdefault('metadata', {}).pop('image/png', None)
    return nb

def run(fn:Path):
    fn = Path(fn).resolve()
    nb, cwd, t0 = read_nb(fn), os.getcwd(), time.perf_counter()
    os.chdir(fn.parent)
    try:
        sh = CaptureShell()
        sh.run_all(nb, exc_stop=True, preproc=skip)
    finally: os.chdir(cwd)
    write_nb(shrink(nb), fn)
    subprocess.run(['nbdev-clean', '--fname', str(fn)], check=True)
    print(f"{fn.name}: ran in {time.perf_counter() - t0:.0f} s, outputs saved", flush=True)

_MACHINE_PATH = re.compile(r'(/tmp/|/work/|/root/|/home/|site-packages|ipython-input)')

def keep_module_outputs(fn:Path):
    "Run a module notebook as `nbdev-test` does and keep its outputs, without warnings or machine paths"
    subprocess.run(['nbdev-test', '--save', str(fn)], check=True)
    nb = read_nb(fn)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != 'code': continue
        cell['outputs'] = [o for o in cell.get('outputs', []) if not (o.get('output_type') == 'stream' and o.get('name') == 'stderr')]
        for o in cell['outputs']:
            text = ''.join(''.join(v) if isinstance(v, list) else str(v) for k, v in {**o.get('data', {}), 'text': o.get('text', '')}.items()
                           if not k.startswith('image/'))
            m = _MACHINE_PATH.search(text)
            if m: sys.exit(f"{fn}: cell {i} shows a path of this machine ({text[max(0, m.start()-60):m.end()+40]!r}): change the example")
    write_nb(shrink(nb), fn)
    subprocess.run(['nbdev-clean', '--fname', str(fn)], check=True)
    print(f"{Path(fn).name}: outputs kept", flush=True)

if __name__ == '__main__':
    if len(sys.argv) < 2: sys.exit(__doc__)
    if sys.argv[1] == '--module':
        for f in sys.argv[2:]: keep_module_outputs(Path(f))
    elif sys.argv[1] == '--shrink':  # only shrink the images of already-run notebooks
        for f in sys.argv[2:]: write_nb(shrink(read_nb(f)), f); subprocess.run(['nbdev-clean', '--fname', f], check=True)
    else:
        for f in sys.argv[1:]: run(f)
