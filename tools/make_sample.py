#!/usr/bin/env python
"""Make the sample bundled in the package (`covid_fastai/sample_xrays/`) from a local copy of the xray3 images.

Only the NIH ChestX-ray14 images (classes No_findings and Pneumonia) are taken: the NIH Clinical Center releases them for
unrestricted use with attribution. The COVID-19 images of xray3 come from figures with per-figure licenses and are never
bundled. One image per patient; a patient with images in both classes is left out altogether (no patient in two classes);
`--n` patients per class drawn with a fixed `--seed`; each image downscaled to `--size` px (Lanczos), saved as a grayscale
JPEG (`--quality`), listed in `labels.csv` (path, label, patient); `README.md` (attribution, counts) is written too.
The result depends only on xray3's `labels.csv`, the images and the options: running it again gives the same files.

    python tools/make_sample.py PATH/TO/xray3 [--n 240] [--size 192] [--quality 88] [--seed 0] [--dest FOLDER]
"""
import argparse, shutil
from pathlib import Path
import pandas as pd
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
DEST = ROOT/'covid_fastai'/'sample_xrays'
CLASSES = ('No_findings', 'Pneumonia')

README = """# A sample of NIH ChestX-ray14

{total} frontal chest X-rays ({n} `No_findings`, {n} `Pneumonia`; one image per patient, {total} patients, no patient in
both classes), downscaled to {size} px (grayscale JPEG, quality {quality}; {mb:.1f} MB), with `labels.csv` (path, label,
patient: the NIH patient id). They let the library's main job run offline: `covid-fastai demo`.

**Source and license.** NIH ChestX-ray14 (ChestX-ray8), released by the NIH Clinical Center for unrestricted use;
the NIH asks for attribution and a citation:

> Xiaosong Wang, Yifan Peng, Le Lu, Zhiyong Lu, Mohammadhadi Bagheri, Ronald Summers. ChestX-ray8: Hospital-scale
> Chest X-ray Database and Benchmarks on Weakly-Supervised Classification and Localization of Common Thorax Diseases.
> IEEE CVPR 2017. https://nihcc.app.box.com/v/ChestXray-NIHCC

Images courtesy of the NIH Clinical Center. The images are the NIH images of the DarkCovidNet collection (`No_findings`
and `Pneumonia`), selected and downscaled by
`tools/make_sample.py --n {n} --size {size} --quality {quality} --seed {seed}`. There are no COVID-19 images here: the public COVID-19 X-rays come from figures whose licenses vary one by one.
Labels were mined from radiology reports by the NIH and are known to be noisy. Research and teaching use only: not for
diagnosis.
"""

def select(df, n, seed=0):
    "`n` NIH patients per class of `df` (path, label, patient), one image each (the first by path); patients seen in both classes left out"
    df = df[df.label.isin(CLASSES) & df.patient.str.startswith('nih-')]
    both = df.groupby('patient').label.nunique().pipe(lambda s: set(s[s > 1].index))
    df = df[~df.patient.isin(both)].sort_values('path').drop_duplicates('patient')
    keep = []
    for c in CLASSES:
        d = df[df.label == c]
        if len(d) < n: raise SystemExit(f"Only {len(d)} patients of class {c} (without the {len(both)} in both classes): lower --n")
        keep.append(d.sample(n, random_state=seed))
    return pd.concat(keep).sort_values('path')

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('src', help='the xray3 folder (labels.csv with path, label, patient)')
    ap.add_argument('--n', type=int, default=240, help='patients (= images) per class')
    ap.add_argument('--size', type=int, default=192, help='longest side of the stored images, px')
    ap.add_argument('--quality', type=int, default=88, help='JPEG quality')
    ap.add_argument('--seed', type=int, default=0, help='seed of the draw')
    ap.add_argument('--dest', default=str(DEST), help='output folder (default: the package sample)')
    a = ap.parse_args()
    src, dest = Path(a.src), Path(a.dest)
    keep = select(pd.read_csv(src/'labels.csv'), a.n, a.seed)
    for d in CLASSES: shutil.rmtree(dest/d, ignore_errors=True)
    rows = []
    for r in keep.itertuples():
        im = Image.open(src/r.path).convert('L')
        im.thumbnail((a.size, a.size), Image.Resampling.LANCZOS)
        out = dest/r.label/(Path(r.path).stem + '.jpg')
        out.parent.mkdir(parents=True, exist_ok=True)
        im.save(out, quality=a.quality, optimize=True)
        rows.append(dict(path=f"{r.label}/{out.name}", label=r.label, patient=r.patient.removeprefix('nih-')))
    pd.DataFrame(rows).to_csv(dest/'labels.csv', index=False)
    mb = sum(f.stat().st_size for f in dest.rglob('*') if f.is_file() and f.name != 'README.md') / 1e6
    (dest/'README.md').write_text(README.format(total=len(rows), n=a.n, size=a.size, quality=a.quality, seed=a.seed, mb=mb))
    where = dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest.name
    print(f"{len(rows)} images ({a.n} per class), {mb:.2f} MB in {where}")

if __name__ == '__main__': main()
