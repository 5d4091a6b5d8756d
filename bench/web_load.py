"""The web app under hostile load: 200 requests from 16 threads mixing good X-rays, bad uploads (not an image, truncated,
wrong field, empty, a one-colour PNG over the pixel limit, a deflated DICOM bomb) and 20 MB requests of ~380,000 form fields,
while another thread polls `/health` every 20 ms.

Checks: every good answer equals the answer to the same image sent alone; every bad upload gets a 4xx with a one-line error;
`/health` latency (median, p99, max) throughout; the server's peak resident memory (sampled every 50 ms from /proc).
Writes bench/results/web_load.json and web_load.md.

    python bench/web_load.py [--images ../shared/data/xray3] [--requests 200] [--threads 16]
    python bench/web_load.py --images ../shared/data/xray3 --heatmaps --requests 120 --threads 60 --poll-ms 50 --bad-rounds 0 --big 0

With `--heatmaps` every good upload asks for a Grad-CAM heatmap, and an answer 503 (the server's bounded queue is full) counts
as correct: it is what a busy server answers (results in web_load_heatmaps.json / .md).

Targets (reliability issue): /health p99 <= 100 ms, server memory <= 1.5 GB, every good answer equal to its single-request answer.
"""
import argparse, io, json, os, platform, random, socket, subprocess, sys, tempfile, threading, time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
import numpy as np, requests
from PIL import Image

RESULTS = Path(__file__).parent/'results'

def _free_port():
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def _rss_tree(pid):
    "Resident memory in bytes of `pid` and its children"
    total = 0
    for p in [pid] + [int(c) for c in Path(f'/proc/{pid}/task/{pid}/children').read_text().split()]:
        try:
            for l in Path(f'/proc/{p}/status').read_text().splitlines():
                if l.startswith('VmRSS:'): total += int(l.split()[1]) * 1024
        except OSError: pass
    return total

def _bad_uploads(tmp):
    "Name -> (bytes, file name, content type, form field) of each kind of bad upload"
    from covid_fastai.imread import write_dicom
    import pydicom
    from pydicom.uid import DeflatedExplicitVRLittleEndian
    buf = io.BytesIO(); Image.new('L', (8000, 6000)).save(buf, 'PNG')   # 48 million pixels in ~60 KB
    ds = pydicom.dcmread(write_dicom(np.zeros((64, 64), np.uint16), tmp/'s.dcm'))
    ds.Rows = ds.Columns = 16384; ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds.save_as(tmp/'bomb.dcm', enforce_file_format=True)
    jpg = io.BytesIO(); Image.fromarray((np.random.default_rng(0).random((256, 256)) * 255).astype(np.uint8)).save(jpg, 'JPEG')
    return {'not_an_image': (b'hello' * 100, 'x.png', 'image/png', 'image'),
            'truncated_jpeg': (jpg.getvalue()[:2000], 'x.jpg', 'image/jpeg', 'image'),
            'wrong_field': (jpg.getvalue(), 'x.jpg', 'image/jpeg', 'file'),
            'empty': (b'', 'x.png', 'image/png', 'image'),
            'pixel_bomb_png': (buf.getvalue(), 'bomb.png', 'image/png', 'image'),
            'dicom_bomb': ((tmp/'bomb.dcm').read_bytes(), 'bomb.dcm', 'application/dicom', 'image')}

def _many_fields(mb=19.9):
    "A multipart body of about `mb` MB made of tiny form fields (the attack of the issue: 382,090 fields)"
    part = b'--XX\r\nContent-Disposition: form-data; name="f"\r\n\r\nx\r\n'
    return part * int(mb * 1e6 / len(part)) + b'--XX--\r\n'

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--images', default=None, help='folder of real X-rays (default: synthetic 512 px JPEGs)')
    ap.add_argument('--n-images', type=int, default=20)
    ap.add_argument('--requests', type=int, default=200)
    ap.add_argument('--threads', type=int, default=16)
    ap.add_argument('--big', type=int, default=4, help='20 MB many-field requests among them')
    ap.add_argument('--heatmaps', action='store_true', help='ask for a Grad-CAM heatmap with every good upload; 503 (queue full) counts as a correct answer')
    ap.add_argument('--poll-ms', type=float, default=20, help='interval of the /health polls')
    ap.add_argument('--bad-rounds', type=int, default=2, help='times each kind of bad upload is sent')
    ap.add_argument('--model', default=None, help='saved model folder (default: a 224 px efficientnet_lite0 trained 1 epoch on synthetic images)')
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix='web_load_'))
    from covid_fastai.images import make_synthetic_xrays, get_xray_files
    if a.model is None:
        from covid_fastai.train import train_covid_learner
        from covid_fastai.inference import save_covid_model
        src = make_synthetic_xrays(tmp/'train', n_per_class=12, size=96)
        save_covid_model(train_covid_learner(src, arch='efficientnet_lite0', epochs=1, freeze_epochs=0, size=224, bs=8, num_workers=0), tmp/'model')
        a.model = tmp/'model'
    if a.images:
        files = sorted(get_xray_files(a.images)); random.Random(0).shuffle(files); files = files[:a.n_images]
    else: files = list(get_xray_files(make_synthetic_xrays(tmp/'imgs', n_per_class=a.n_images // 2, size=512)))
    goods = [(f.read_bytes(), f.name) for f in files]
    bads = _bad_uploads(tmp)
    big = _many_fields()
    port = _free_port(); url = f'http://127.0.0.1:{port}'
    proc = subprocess.Popen(['covid-fastai', 'serve', str(a.model), '--port', str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(600):
        try:
            if requests.get(url + '/health', timeout=1).ok: break
        except requests.ConnectionError: time.sleep(0.2)
    else: raise SystemExit("server did not start")
    q = '?heatmap=1' if a.heatmaps else '?heatmap=0'
    post = lambda data, name, ct='image/jpeg', field='image': requests.post(url + '/api/predict' + q, files={field: (name, data, ct)}, timeout=300)
    alone = {name: post(d, name).json()['probabilities'] for d, name in goods}   # the single-request answers
    rss_idle = _rss_tree(proc.pid)
    jobs = [('good', i) for i in range(a.requests - a.big - a.bad_rounds * len(bads))] + [('bad', k) for k in bads] * a.bad_rounds + [('big', i) for i in range(a.big)]
    random.Random(1).shuffle(jobs)
    stop, health, peak = threading.Event(), [], [rss_idle]
    def poll_health():
        while not stop.is_set():
            t = time.perf_counter()
            try: ok = requests.get(url + '/health', timeout=10).ok
            except requests.RequestException: ok = False
            health.append((time.perf_counter() - t, ok)); time.sleep(a.poll_ms / 1000)
    def poll_mem():
        while not stop.is_set(): peak.append(_rss_tree(proc.pid)); time.sleep(0.05)
    def run(job):
        kind, k = job
        t = time.perf_counter()
        if kind == 'good':
            d, name = goods[k % len(goods)]
            r = post(d, name)
            if r.status_code == 503: return kind, k, 'busy', time.perf_counter() - t
            ok = r.status_code == 200 and all(abs(r.json()['probabilities'][c] - v) <= 1e-6 for c, v in alone[name].items())
        elif kind == 'bad':
            d, name, ct, field = bads[k]
            r = post(d, name, ct, field)
            ok = 400 <= r.status_code < 500 and '\n' not in r.json().get('error', '\n')
        else:
            try:
                r = requests.post(url + '/api/predict', data=big, headers={'Content-Type': 'multipart/form-data; boundary=XX'}, timeout=300)
                ok = 400 <= r.status_code < 500
            except requests.ConnectionError: ok = True   # refused before the whole body was read: the server closed the connection
        return kind, k, ok, time.perf_counter() - t
    threads = [threading.Thread(target=poll_health, daemon=True), threading.Thread(target=poll_mem, daemon=True)]
    for t in threads: t.start()
    t0 = time.perf_counter()
    with ThreadPoolExecutor(a.threads) as ex: res = list(ex.map(run, jobs))
    wall = time.perf_counter() - t0
    stop.set(); [t.join() for t in threads]
    proc.terminate(); proc.wait(10)
    hl = np.array([h for h, _ in health]) * 1000
    by = {kind: [r for r in res if r[0] == kind] for kind in ('good', 'bad', 'big')}
    out = dict(requests=len(res), threads=a.threads, wall_s=round(wall, 1), images='real X-rays' if a.images else 'synthetic 512 px JPEGs',
               heatmaps=a.heatmaps, health_poll_ms=a.poll_ms,
               good=len(by['good']), good_equal_to_alone=sum(r[2] is True for r in by['good']), good_busy_503=sum(r[2] == 'busy' for r in by['good']),
               bad=len(by['bad']), bad_refused_4xx=sum(r[2] for r in by['bad']), bad_kinds=sorted(bads),
               many_field_20mb=len(by['big']), many_field_refused=sum(r[2] for r in by['big']),
               many_field_seconds_max=round(max((r[3] for r in by['big']), default=0), 2),
               health_polls=len(hl), health_failed=sum(not ok for _, ok in health),
               health_median_ms=round(float(np.median(hl)), 1), health_p99_ms=round(float(np.percentile(hl, 99)), 1), health_max_ms=round(float(hl.max()), 1),
               server_rss_idle_mb=round(rss_idle / 2**20), server_rss_peak_mb=round(max(peak) / 2**20),
               machine=f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
    out['targets_met'] = dict(health_p99=out['health_p99_ms'] <= 100, memory=out['server_rss_peak_mb'] <= (2048 if a.heatmaps else 1536),
                              answers=out['good_equal_to_alone'] + out['good_busy_503'] == out['good'] and out['bad_refused_4xx'] == out['bad'] and out['many_field_refused'] == out['many_field_20mb'])
    RESULTS.mkdir(exist_ok=True)
    name = 'web_load_heatmaps' if a.heatmaps else 'web_load'
    (RESULTS/f'{name}.json').write_text(json.dumps(out, indent=2))
    cmd = ' '.join(['python bench/web_load.py'] + (['--images <xray3>'] if a.images else []) + (['--heatmaps'] if a.heatmaps else [])
                   + [f'--{k.replace("_", "-")} {v}' for k, v in (('requests', a.requests), ('threads', a.threads), ('poll_ms', a.poll_ms), ('bad_rounds', a.bad_rounds), ('big', a.big))])
    md = ['# Web app under load' + (' (with heatmaps)' if a.heatmaps else ''), '', f"`{cmd}`: {out['requests']} requests from {out['threads']} threads "
          f"({out['good']} good {out['images']}, {out['bad']} bad uploads of {len(bads)} kinds, {out['many_field_20mb']} requests of 20 MB made of tiny form fields), "
          f"`/health` polled every {a.poll_ms:g} ms; {out['machine']}.", '', '| measure | value | target |', '|---|---|---|',
          f"| good answers equal to the single-request answer | {out['good_equal_to_alone']} / {out['good']}" + (f" (+ {out['good_busy_503']} answered 503, queue full)" if out['good_busy_503'] else '') + " | all (or 503) |",
          f"| bad uploads answered 4xx with a one-line error | {out['bad_refused_4xx']} / {out['bad']} | all |",
          f"| 20 MB many-field requests refused | {out['many_field_refused']} / {out['many_field_20mb']} (slowest {out['many_field_seconds_max']} s) | all |",
          f"| `/health` latency median / p99 / max | {out['health_median_ms']} / {out['health_p99_ms']} / {out['health_max_ms']} ms ({out['health_polls']} polls, {out['health_failed']} failed) | p99 <= 100 ms |",
          f"| server memory idle / peak | {out['server_rss_idle_mb']} / {out['server_rss_peak_mb']} MB | <= {2048 if a.heatmaps else 1536} MB |",
          f"| wall time | {out['wall_s']} s | |"]
    (RESULTS/f'{name}.md').write_text('\n'.join(md) + '\n')
    print('\n'.join(md))

if __name__ == '__main__': main()
