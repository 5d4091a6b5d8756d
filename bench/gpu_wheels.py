#!/usr/bin/env python
"""Download, into `.whl/`, the wheels the GPU suite needs on a machine that has PyTorch but no network.

The lent GPU machines hold PyTorch, torchvision, timm, accelerate, onnx, pandas, scikit-learn... (Python 3.12) but not
fastai or this package. This walks the requirements of `covid-fastai` and `nbdev` as installed here, leaves out what the
GPU image already has (`HAS`, from its package list) and the CUDA stack, and downloads the rest for CPython 3.12 on
manylinux x86-64 (`--no-deps`: one version of each), plus a wheel of this package built from the working tree.

    python bench/gpu_wheels.py            # then: device run with carry ['.whl'] and `bash bench/gpu_suite.sh`
"""
import re, subprocess, sys, shutil
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Already on the GPU machines (their image's package list, 2026-11): not carried
HAS = set("""absl-py accelerate aiofiles aiohttp anyio attrs build certifi charset-normalizer click cloudpickle colorama contourpy
cycler filelock fonttools fsspec h11 httpcore httpx huggingface-hub idna imageio iniconfig jinja2 joblib kiwisolver lazy-loader
markdown markdown-it-py markupsafe matplotlib mdurl networkx numpy onnx onnxruntime opencv-python-headless packaging pandas
pillow pip pluggy protobuf psutil pyarrow pygments pyparsing pytest python-dateutil pyyaml regex requests rich safetensors
scikit-image scikit-learn scipy setuptools six sympy mpmath threadpoolctl tifffile timm tokenizers torch torchvision tqdm
triton typing-extensions urllib3 uvloop wheel pyproject-hooks typer shellingham tabulate flatbuffers ml-dtypes narwhals wrapt
annotated-doc hf-xet""".split())
# the CUDA stack is there; the browser is not needed; lite1/lite2 weights (43 MB) would pass the 64 MiB a call may carry
SKIP = re.compile(r'^(nvidia-|cuda-|torch|triton|playwright|greenlet|pyee|efficientnet-lite[12]-)')
STOP = {'spacy'}   # fastai's text models only: `fastai.vision` never imports it (30 MB with its own needs)

def _norm(n): return re.sub(r'[-_.]+', '-', n).lower()

def needed(roots=('covid-fastai', 'nbdev', 'accelerate')):
    "Installed distributions required (transitively) by `roots`, minus what the GPU image has"
    seen, todo = {}, list(roots)
    while todo:
        n = _norm(todo.pop())
        if n in seen or n in STOP or n in HAS: continue
        try: d = metadata.distribution(n)
        except metadata.PackageNotFoundError: continue
        seen[n] = d.version
        for r in d.requires or []:
            if 'extra ==' in r: continue
            todo.append(re.split(r'[\s;<>=!~\[(]', r, maxsplit=1)[0])
    return {n: v for n, v in seen.items() if n not in HAS and not SKIP.match(n) and n != 'covid-fastai'}

def main():
    out = ROOT/'.whl'; out.mkdir(exist_ok=True)
    plats = [f'--platform={p}' for p in ('manylinux_2_28_x86_64', 'manylinux_2_27_x86_64', 'manylinux_2_17_x86_64',
                                          'manylinux2014_x86_64', 'manylinux1_x86_64', 'any')]
    failed = []
    for n, v in sorted(needed().items()):
        if list(out.glob(f"{n.replace('-', '_')}-{v}-*.whl")) or list(out.glob(f"{n}-{v}-*.whl")): continue
        r = subprocess.run([sys.executable, '-m', 'pip', 'download', '-q', '--no-deps', '--only-binary=:all:', '--python-version', '3.12',
                            '--implementation', 'cp', *plats, '-d', str(out), f'{n}=={v}'], capture_output=True, text=True)
        if r.returncode:   # no wheel on the registry (a pure-Python sdist, e.g. grad-cam): build one
            r = subprocess.run([sys.executable, '-m', 'pip', 'wheel', '-q', '--no-deps', '-w', str(out), f'{n}=={v}'], capture_output=True, text=True)
        print(('ok    ' if r.returncode == 0 else 'FAILED') + f' {n}=={v}', flush=True)
        if r.returncode: failed.append(n)
    for f in out.glob('covid_fastai-*.whl'): f.unlink()
    subprocess.run([sys.executable, '-m', 'pip', 'wheel', '-q', '--no-deps', '-w', str(out), str(ROOT)], check=True)
    size = sum(f.stat().st_size for f in out.glob('*.whl'))
    print(f"{len(list(out.glob('*.whl')))} wheels in {out.name}/, {size/2**20:.1f} MiB" + (f"; not found: {', '.join(failed)}" if failed else ''))
    return 1 if failed else 0

if __name__ == '__main__': sys.exit(main())
