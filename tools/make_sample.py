#!/usr/bin/env python
"""Make the sample bundled in the package (`covid_fastai/sample_xrays/`) from a local copy of the xray3 images.

Only the NIH ChestX-ray14 images (classes No_findings and Pneumonia) are taken: the NIH Clinical Center releases them for
unrestricted use with attribution. The COVID-19 images of xray3 come from figures with per-figure licenses and are never
bundled. One image per patient, `--n` per class, drawn with a fixed seed, downscaled to `--size` px (Lanczos), saved as
JPEG (quality 90), with `labels.csv` (path, label, patient).

    python tools/make_sample.py PATH/TO/xray3 [--n 40] [--size 256]
"""
import argparse, random, shutil
from pathlib import Path
import pandas as pd
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
DEST = ROOT/'covid_fastai'/'sample_xrays'
CLASSES = ('No_findings', 'Pneumonia')

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('src'); ap.add_argument('--n', type=int, default=40); ap.add_argument('--size', type=int, default=256)
    a = ap.parse_args()
    src = Path(a.src)
    df = pd.read_csv(src/'labels.csv')
    df = df[df.label.isin(CLASSES) & df.patient.str.startswith('nih-')]
    keep, taken = [], set()
    for c in CLASSES:   # one image per patient, and no patient in both classes
        d = df[(df.label == c) & ~df.patient.isin(taken)].drop_duplicates('patient').sort_values('path')
        keep.append(d.sample(a.n, random_state=0)); taken |= set(keep[-1].patient)
    keep = pd.concat(keep).sort_values('path')
    for d in CLASSES: shutil.rmtree(DEST/d, ignore_errors=True)
    rows = []
    for r in keep.itertuples():
        im = Image.open(src/r.path).convert('L')
        im.thumbnail((a.size, a.size), Image.Resampling.LANCZOS)
        out = DEST/r.label/(Path(r.path).stem + '.jpg')
        out.parent.mkdir(parents=True, exist_ok=True)
        im.save(out, quality=90)
        rows.append(dict(path=f"{r.label}/{out.name}", label=r.label, patient=r.patient.removeprefix('nih-')))
    pd.DataFrame(rows).to_csv(DEST/'labels.csv', index=False)
    print(f"{len(rows)} images, {sum(f.stat().st_size for f in DEST.rglob('*.jpg'))/1e6:.2f} MB in {DEST.relative_to(ROOT)}")

if __name__ == '__main__': main()
