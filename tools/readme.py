#!/usr/bin/env python
"""Write README.md from nbs/index.ipynb without Quarto (which `nbdev-readme` needs).

Markdown cells are copied; code cells become ```python blocks with nbdev directive lines (`#| ...`) removed;
cells marked `#| hide` are left out, and so are outputs. `--check` fails if README.md is out of date.
"""
import sys, re
from pathlib import Path
from nbdev.process import read_nb

root = Path(__file__).resolve().parent.parent
_directive = re.compile(r'^\s*#\s*\|')

def render(nb_path=root/'nbs'/'index.ipynb'):
    parts = []
    for c in read_nb(nb_path).cells:
        src = c.source.strip()
        if not src: continue
        if c.cell_type == 'markdown': parts.append(re.sub(r'\]\((?!https?:|#|/|nbs/)([^)\s]+\.(?:ipynb|png|jpe?g|svg))', r'](nbs/\1', src))  # notebook-relative images and pages
        elif c.cell_type == 'code':
            lines = src.splitlines()
            if any(re.match(r'^\s*#\s*\|\s*hide\s*$', l) for l in lines): continue
            code = '\n'.join(l for l in lines if not _directive.match(l)).strip()
            if code: parts.append(f"```python\n{code}\n```")
    return "<!-- Generated from nbs/index.ipynb by tools/readme.py: edit the notebook, not this file -->\n\n" + '\n\n'.join(parts) + '\n'

if __name__ == '__main__':
    text, readme = render(), root/'README.md'
    if '--check' in sys.argv:
        if not readme.exists() or readme.read_text() != text: sys.exit("README.md is out of date: run `python tools/readme.py`")
    else: readme.write_text(text)
