"The library's layers (issue 29): the inference side imports nothing of training, and importing the library changes nothing of the caller's console"
import ast, subprocess, sys
from pathlib import Path
import pytest
from covid_fastai.inference import save_covid_model, export_onnx, load_covid_model
from covid_fastai.ensemble import Ensemble, save_ensemble

TRAINING = ('train', 'learner', 'recipes', 'prep', 'check', 'dataloaders', 'presets', 'config', 'distributed')
PKG = Path(__file__).parents[1]/'covid_fastai'

def test_inference_imports_nothing_of_training(three_class, tmp_path):
    "A fresh interpreter loads a saved model, an ONNX file and an ensemble folder, predicts and draws heatmaps without importing training"
    learn, test = three_class
    save_covid_model(learn, tmp_path/'model')
    export_onnx(load_covid_model(tmp_path/'model'), tmp_path/'model.onnx')
    save_ensemble(Ensemble([learn, learn], names=['a', 'b']), tmp_path/'ens')
    img = str(sorted(Path(test).rglob('*.png'))[0])
    code = f"""
import sys
from covid_fastai.inference import load_covid_model
for m in ({str(tmp_path/'model')!r}, {str(tmp_path/'model.onnx')!r}, {str(tmp_path/'ens')!r}):
    p = load_covid_model(m).predict_proba([{img!r}])
    assert p.shape == (1, 3), p.shape
assert load_covid_model({str(tmp_path/'model')!r}).heatmaps([{img!r}]).shape[0] == 1
print(sorted(m for m in {TRAINING!r} if 'covid_fastai.' + m in sys.modules))
"""
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip().splitlines()[-1] == '[]', r.stdout

def _module_imports(fn:Path) -> set:
    "The covid_fastai modules `fn` imports at module level (not inside functions)"
    out = set()
    for node in ast.parse(fn.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module: out.add(node.module.split('.')[0])
        elif isinstance(node, ast.ImportFrom) and (node.module or '').startswith('covid_fastai.'): out.add(node.module.split('.')[1])
    return out

def test_module_level_imports_have_no_circle():
    "Drawn from the code: the modules' top-level imports form no circle, and no inference-side module imports a training module"
    mods = {f.stem: _module_imports(f) for f in PKG.glob('*.py') if f.stem not in ('_modidx', 'all', '__init__')}
    state = {}
    def visit(m, path):
        if state.get(m) == 'done': return
        assert state.get(m) != 'open', f"import circle: {' -> '.join(path + [m])}"
        state[m] = 'open'
        for n in sorted(mods.get(m, ())): visit(n, path + [m])
        state[m] = 'done'
    for m in sorted(mods): visit(m, [])
    def reach(m, seen=None):
        seen = set() if seen is None else seen
        for n in mods.get(m, ()):
            if n not in seen: seen.add(n); reach(n, seen)
        return seen
    for m in ('core', 'card', 'imread', 'inference', 'predict', 'ensemble', 'evaluation', 'calibration', 'metrics', 'cam', 'plots', 'report', 'serve', 'outputs'):
        assert not reach(m) & set(TRAINING), (m, sorted(reach(m) & set(TRAINING)))

def test_importing_the_library_leaves_the_console_alone():
    "was: importing covid_fastai.cli (and so covid_fastai.all) reconfigured sys.stdout for everyone"
    code = """
import sys, warnings
before = (sys.stdout.errors, sys.stderr.errors, warnings.formatwarning)
from covid_fastai.all import *
assert (sys.stdout.errors, sys.stderr.errors, warnings.formatwarning) == before, (sys.stdout.errors, sys.stderr.errors)
print('ok')
"""
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip().endswith('ok'), r.stderr[-3000:]
