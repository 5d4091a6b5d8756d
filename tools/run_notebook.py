#!/usr/bin/env python
"""Run notebooks and keep their outputs: the tutorials carry the outputs of real runs.

Every code cell runs, those flagged `slow` included, from the notebook's own folder (as in Jupyter), except cells marked
`#| eval: false` (installs and downloads meant for Colab). Stops at the first error and leaves the notebook unchanged then.
The notebook is cleaned with `nbdev-clean` afterwards.

    python tools/run_notebook.py nbs/tutorials/tiny_set.ipynb [more.ipynb ...]
"""
import os, re, subprocess, sys, time
from pathlib import Path
from fastcore.nbio import read_nb, write_nb
from execnb.shell import CaptureShell

_NO_EVAL = re.compile(r'^\s*#\|\s*eval:\s*false\s*$', re.M)

def skip(cell) -> bool:
    "Markdown cells, and code cells marked `#| eval: false`"
    return cell.cell_type != 'code' or bool(_NO_EVAL.search(''.join(cell.source)))

def run(fn:Path):
    fn = Path(fn).resolve()
    nb, cwd, t0 = read_nb(fn), os.getcwd(), time.perf_counter()
    os.chdir(fn.parent)
    try:
        sh = CaptureShell()
        sh.run_all(nb, exc_stop=True, preproc=skip, verbose=True)
    finally: os.chdir(cwd)
    write_nb(nb, fn)
    subprocess.run(['nbdev-clean', '--fname', str(fn)], check=True)
    print(f"{fn.name}: ran in {time.perf_counter() - t0:.0f} s, outputs saved", flush=True)

if __name__ == '__main__':
    if len(sys.argv) < 2: sys.exit(__doc__)
    for f in sys.argv[1:]: run(f)
