"""Screenshot of the web app after a prediction, for the docs.

    python tools/app_screenshot.py MODEL IMAGE [--out nbs/images/app.png]

Starts `covid-fastai serve MODEL` on a free port, uploads IMAGE in headless Debian Chromium (Playwright), waits for the
prediction and its heatmap, and saves a full-page PNG.
"""
import argparse, socket, subprocess, sys, time
from pathlib import Path
import requests
from playwright.sync_api import sync_playwright

ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
        '--disable-sync', '--no-first-run', '--disable-quic']

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('model'); ap.add_argument('image')
    ap.add_argument('--out', default=str(Path(__file__).parents[1]/'nbs'/'images'/'app.png'))
    ap.add_argument('--chromium', default='/usr/bin/chromium')
    a = ap.parse_args()
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]
    proc = subprocess.Popen(['covid-fastai', 'serve', a.model, '--port', str(port)])
    url = f'http://127.0.0.1:{port}'
    try:
        for _ in range(240):
            try:
                if requests.get(url + '/health', timeout=1).ok: break
            except requests.ConnectionError: time.sleep(0.5)
            if proc.poll() is not None: sys.exit("the server exited")
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=a.chromium, args=ARGS)
            pg = b.new_page(viewport={'width': 1000, 'height': 900})
            pg.goto(url + '/')
            pg.set_input_files('#file', a.image)
            pg.click('#submit')
            pg.wait_for_function("document.getElementById('heatmap').complete && document.getElementById('heatmap').naturalWidth > 0 "
                                 "&& document.getElementById('label').textContent.length > 0", timeout=120000)
            Path(a.out).parent.mkdir(parents=True, exist_ok=True)
            pg.screenshot(path=a.out, full_page=True)
            print(f"{pg.text_content('#label')}: screenshot in {a.out}")
            b.close()
    finally:
        proc.terminate(); proc.wait(10)

if __name__ == '__main__': main()
