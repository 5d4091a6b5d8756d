"The five reference projects as notebooks (nbs/reference_projects/): recipe, real-run outputs, the three-column table, README links"
import json, re
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent
REF = ROOT/'nbs'/'reference_projects'
NBS = sorted(REF.glob('*.ipynb'))
ORIGINAL = {'01': ('vgg16', 'resnet18'), '02': ('vgg16', 'resnet18'), '03': ('vgg16',), '04': ('mobilenet',), '05': ('densenet201',)}
MACHINE_PATH = re.compile(r"/(?:work|tmp|root|home)/|\.\./shared/")

def _cells(nb): return json.loads(nb.read_text())['cells']
def _src(c): return ''.join(c['source'])
def _text(o): return ''.join(o.get('text', '')) + ''.join(''.join(v) for k, v in o.get('data', {}).items() if k.startswith('text/'))

def test_five_projects():
    assert [nb.name[:2] for nb in NBS] == list(ORIGINAL)

@pytest.mark.parametrize('nb', NBS, ids=lambda p: p.stem)
def test_notebook(nb):
    cells = _cells(nb)
    text = '\n'.join(_src(c) for c in cells)
    assert _src(cells[0]).startswith('# Reference project ') and '\n> ' in _src(cells[0])   # title and description for the docs page
    assert 'not a medical device' in text
    code = [c for c in cells if c['cell_type'] == 'code']
    online = [_src(c) for c in code if '#| eval: false' in _src(c)]
    for arch in ORIGINAL[nb.name[:2]]: assert any(f"'{arch}'" in s for s in online), f"{nb.name}: no cell with the project's {arch}"
    train = [c for c in code if 'run(' in _src(c) and '#| eval: false' not in _src(c) and not _src(c).lstrip().startswith(('def ', 'ARCH'))]
    assert train and all('#| slow' in _src(c) for c in train), f"{nb.name}: training cells must be flagged slow"
    slow = [c for c in code if '#| slow' in _src(c)]
    assert all(c['outputs'] for c in slow if 'app_screenshot' not in _src(c)), f"{nb.name}: a slow cell has no saved output (run tools/run_notebook.py)"
    table = [_text(o) for c in slow if 'compare_protocols' in _src(c) for o in c['outputs']]
    honest, leaky = ('before augmentation', 'after augmentation') if 'tiny' in nb.name else ('patient split', 'image split')   # the three columns
    assert any('published' in t and honest in t and leaky in t for t in table), nb.name
    assert not any(MACHINE_PATH.search(_text(o)) for c in code for o in c['outputs']), f"{nb.name}: an output shows a path of this machine"
    assert '## What the difference means' in text

def test_readme_links_each_project():
    readme = (ROOT/'README.md').read_text()
    for nb in NBS: assert f"(nbs/reference_projects/{nb.name})" in readme, nb.name

def test_website_project_screenshot():
    assert (ROOT/'nbs'/'images'/'reference_website.png').stat().st_size > 10_000
