"""Screenshot of the top of an evaluation report (report.html), for the docs.

    python tools/report_screenshot.py REPORT_HTML [--out nbs/images/report.png] [--height 1500]

Opens the report in headless Debian Chromium (Playwright) at 1100 px wide and saves the first `--height` pixels as PNG.
Use a report of the bundled sample (`covid-fastai demo`): its images are NIH ChestX-ray14 X-rays, which may be shown.
"""
import argparse
from pathlib import Path
from playwright.sync_api import sync_playwright

ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
        '--disable-sync', '--no-first-run', '--disable-quic']

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('report'); ap.add_argument('--out', default=str(Path(__file__).parents[1]/'nbs'/'images'/'report.png'))
    ap.add_argument('--height', type=int, default=1500); ap.add_argument('--chromium', default='/usr/bin/chromium')
    a = ap.parse_args()
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=a.chromium, args=ARGS)
        pg = b.new_page(viewport={'width': 1100, 'height': a.height})
        pg.goto(Path(a.report).resolve().as_uri(), wait_until='load')
        pg.screenshot(path=a.out, clip=dict(x=0, y=0, width=1100, height=a.height))
        b.close()
    print(f"wrote {a.out}")

if __name__ == '__main__': main()
