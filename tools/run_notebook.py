#!/usr/bin/env python
"""Run notebooks and keep their outputs: the tutorials carry the outputs of real runs.

Every code cell runs, those flagged `slow` included, from the notebook's own folder (as in Jupyter), except cells marked
`#| eval: false` (installs and downloads meant for Colab). Stops at the first error and leaves the notebook unchanged then.
Images over 60 kB are stored as JPEG at most 720 px wide, so notebooks stay small. The notebook is cleaned with `nbdev-clean`
afterwards.

    python tools/run_notebook.py nbs/tutorials/tiny_set.ipynb [more.ipynb ...]
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

def drop_bars(cell):
    "Remove fastprogress bars (which print as text outside Jupyter) from the cell's stream outputs"
    outs = []
    for o in cell.get('outputs', []):
        if o.get('output_type') == 'stream':
            text = _BAR.sub('', ''.join(o['text']) if isinstance(o['text'], list) else o['text']).replace('\r', '')
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

if __name__ == '__main__':
    if len(sys.argv) < 2: sys.exit(__doc__)
    if sys.argv[1] == '--shrink':  # only shrink the images of already-run notebooks
        for f in sys.argv[2:]: write_nb(shrink(read_nb(f)), f); subprocess.run(['nbdev-clean', '--fname', f], check=True)
    else:
        for f in sys.argv[1:]: run(f)
