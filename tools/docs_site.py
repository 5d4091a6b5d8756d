#!/usr/bin/env python
"""Build the documentation website locally, without Quarto.

The published site is built by `nbdev-docs` (.github/workflows/deploy.yaml): nbdev processes every notebook of nbs/,
then Quarto renders the result. Use `nbdev-docs` (or `nbdev-preview`) wherever Quarto is installed. Where it cannot be
installed, this script builds a plain static site from the same notebooks:

1. nbdev's own docs processors (`nbdev.processors.FilterDefaults`, what `nbdev-docs` / `nbdev-proc-nbs` run on each
   notebook before Quarto): the `# Title` / `> description` cell becomes the page title, a `show_doc` cell is added
   after every exported definition and executed (API signature and docstring), `#| hide` and `#| export` cells are
   dropped, `#| exports` cells shown, links added. Only the cells `show_doc` needs are executed (exported code,
   imports, `show_doc` calls); unlike nbdev, a cell mixing imports and other code (say, training a model) runs its
   imports only. Every other cell keeps its saved outputs.
2. nbconvert turns each processed notebook into HTML, which is wrapped in a page with the title, the description and a
   sidebar linking every page: index, the numbered notebooks, then one section per sub-folder (nbs/tutorials/ ->
   "Tutorials"), the order of nbs/sidebar.yml.

    python tools/docs_site.py [--out _site] [--only PATTERN ...] [--sidebar]

`--only` renders just the notebooks whose name or path matches a glob (the sidebar still lists every page);
`--sidebar` (re)writes nbs/sidebar.yml, nbdev's sidebar format, from that same page order. Check the result with
`python tools/check_docs.py`.
"""
import argparse, ast, atexit, fnmatch, html, json, os, re, shutil, sys, time, warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NBS = ROOT/'nbs'
ASSETS = {'.png', '.jpg', '.jpeg', '.gif', '.svg', '.webp'}

def pages(nbs=NBS):
    "[(section, [notebook, ...]), ...]: top-level notebooks (index first, then by name) under section None, then one section per sub-folder"
    res = [(None, sorted(nbs.glob('*.ipynb'), key=lambda p: (p.name != 'index.ipynb', p.name)))]
    for d in sorted(p for p in nbs.iterdir() if p.is_dir() and p.name[0] not in '_.'):
        nbl = sorted(d.rglob('*.ipynb'), key=lambda p: (p.name != 'index.ipynb', str(p)))
        if nbl: res.append((re.sub(r'^\d+_', '', d.name).replace('_', ' ').capitalize(), nbl))
    return [(s, [p for p in l if not any(re.match(r'[_.]', o) for o in p.relative_to(nbs).parts)]) for s, l in res]  # as nbdev skips them

def html_path(nb):
    "Output path relative to the site root, as nbdev names it (nbs/01_data.ipynb -> data.html)"
    from nbdev.config import nbpath2html
    return nbpath2html(nb.relative_to(NBS)).as_posix()

def sidebar_yml(nbs=NBS):
    "nbs/sidebar.yml as nbdev writes it (`nbdev_sidebar`), from `pages`"
    import yaml
    from nbdev.quarto import IndentDumper
    contents = []
    for section, nbl in pages(nbs):
        items = [p.relative_to(nbs).as_posix() for p in nbl]
        contents += items if section is None else [{'section': section, 'contents': items}]
    return yaml.dump({'website': {'sidebar': {'contents': contents}}}, Dumper=IndentDumper, sort_keys=False)

def front_matter(path):
    "Front matter (title, description) of a notebook as nbdev reads it, and the lines of its `# Title` cell that nbdev drops"
    from fastcore.nbio import read_nb, md_frontmatter, cell_frontmatter
    for c in read_nb(path).cells:
        if c.cell_type == 'raw' and 'title' in (fm := cell_frontmatter(c.source)): return fm, []
        if c.cell_type == 'markdown' and 'title' in (fm := md_frontmatter(c.source)):  # nbdev removes this whole cell
            return fm, [l for l in c.source.splitlines() if l.strip() and not re.match(r'#\s|>\s|-\s+\S.*:', l)]
    return {}, []

# -- 1. nbdev's processing ----------------------------------------------------------------------------------------

def _mixed(cell):
    "Top-level imports of a code cell that nbdev would execute only for them, when the cell also holds other code"
    from nbdev.processors import _show_docs
    trees = cell.parsed_() if cell.cell_type == 'code' else None
    if not trees or cell.directives_.keys() & {'export', 'exports', 'exporti', 'exec_doc'} or _show_docs(trees): return None
    imps = [t for t in trees if isinstance(t, (ast.Import, ast.ImportFrom))]
    if len(imps) == len(trees) or not any(isinstance(n, (ast.Import, ast.ImportFrom)) for t in trees for n in ast.walk(t)): return None
    return '\n'.join(ast.unparse(t) for t in imps)

def processors():
    "nbdev's docs processors, with `exec_show_docs` running only the imports of cells that mix imports and other code"
    from nbdev.processors import FilterDefaults, exec_show_docs
    class exec_show_docs_imports(exec_show_docs):
        def begin(self):
            if self.nb.has_docs_: super().begin()  # no Python shell for a notebook with nothing to document
        def __call__(self, cell):
            imps = _mixed(cell)
            if imps is None: return super().__call__(cell)
            if imps and self.nb.has_docs_ and hasattr(self, 'k'): self.k.run_cell(imps)
        def end(self):
            super().end()
            if hasattr(self, 'k'): atexit.unregister(self.k.atexit_operations)  # IPython's exit-time reset: a slow gc pass per shell
    class Filter(FilterDefaults):
        def base_procs(self): return [exec_show_docs_imports if p is exec_show_docs else p for p in super().base_procs()]
    return Filter()

def process(path, filt):
    "The notebook at `path` as `nbdev-docs` hands it to Quarto"
    from fastcore.nbio import read_nb
    nb = read_nb(path)
    os.environ['IN_TEST'] = '1'  # as nbdev.serve_drv does while processing
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings('ignore', 'Found cells containing imports')
            filt(nb)
    finally: os.environ.pop('IN_TEST', None)
    return nb

# -- 2. HTML ------------------------------------------------------------------------------------------------------

_opt = re.compile(r'^#\|\s*([\w-]+)\s*:\s*(.*?)\s*$')
_attr_link = re.compile(r'\[([^\]]*)\]\(([^)\s]+)\)\{([^}]*)\}')  # Pandoc link attributes: [txt](url){target="_blank" ...}
_html_attr = re.compile(r'[\w-]+="[^"]*"')

def _pandoc_links(md):
    "Markdown links with Pandoc attributes (show_doc's source link) as HTML links, which nbconvert's Markdown can read"
    return _attr_link.sub(lambda m: f'<a href="{m[2]}" {" ".join(_html_attr.findall(m[3]))}>{m[1]}</a>', md)

def quarto_to_nbconvert(nb):
    "Apply the Quarto cell options nbdev leaves in code cells (`#| echo: false`, ...), as nbconvert cell tags; return the front matter"
    import yaml
    fm, cells = {}, []
    for c in nb.cells:
        if c.cell_type == 'raw' and c.source.lstrip().startswith('---'):
            fm = yaml.safe_load(c.source.strip().strip('-')) or {}
            continue
        if c.cell_type == 'markdown': c.source = _pandoc_links(c.source)
        if c.cell_type == 'code':
            lines, opts = c.source.splitlines(), {}
            while lines and (m := _opt.match(lines[0])): opts[m[1]] = m[2].strip('"\''); lines.pop(0)
            c.source = '\n'.join(lines).strip()
            if opts.get('include') == 'false': continue
            if _test_only(c): continue   # a cell of checks only (test_eq, test_fail, assert): a test, not an example
            tags = c.metadata.setdefault('tags', [])
            if opts.get('echo') == 'false' or not c.source: tags.append('remove_input')
            if opts.get('output') == 'false': c.outputs = []
            if c.source.startswith('show_doc('): tags.append('show_doc')
            if opts.get('code-fold') in ('show', 'true'): c.metadata['code_summary'] = opts.get('code-summary', 'Code')
            for o in c.get('outputs', []):
                md = o.get('data', {}).get('text/markdown')
                if md: o['data']['text/markdown'] = _pandoc_links(''.join(md))
        cells.append(c)
    nb.cells = cells
    return fm

_TEST_LINE = re.compile(r'^\s*(test_\w+\(|assert\b|#|$)')

def _test_only(c) -> bool:
    "A code cell with no output whose every statement is a check (`test_eq(...)`, `assert ...`): hidden from the page"
    if c.get('outputs'): return False
    stmts = [l for l in c.source.splitlines() if l.strip() and not l.startswith((' ', '\t', ')', ']', '}'))]
    return bool(stmts) and all(_TEST_LINE.match(l) for l in stmts)

CELLS = """{%- extends 'basic/index.html.j2' -%}
{% block input_group -%}
{%- if cell.metadata.code_summary -%}<details class="code-fold" open><summary>{{ cell.metadata.code_summary }}</summary>{{ super() }}</details>
{%- else -%}{{ super() }}{%- endif -%}
{%- endblock input_group %}"""

def exporter():
    "nbconvert's HTML exporter: cells only (no page around them), no prompts, `remove_input` tags honoured"
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter
    from traitlets.config import Config
    c = Config()
    c.HTMLExporter.exclude_input_prompt = c.HTMLExporter.exclude_output_prompt = True
    c.TagRemovePreprocessor.update(enabled=True, remove_input_tags={'remove_input'})
    return HTMLExporter(config=c, template_name='basic', extra_loaders=[DictLoader({'cells.j2': CELLS})], template_file='cells.j2')

_nb_link = re.compile(r'href="(?![\w+.-]+:)([^"#]*/)?([^"/#]+)\.ipynb')  # relative links to notebooks

_cell_keys = {'cell_type', 'id', 'metadata', 'source', 'outputs', 'execution_count', 'attachments'}

def to_html(nb, exp):
    "Body HTML of a processed notebook, and its front matter"
    import nbformat
    from fastcore.nbio import nb2dict
    fm = quarto_to_nbconvert(nb)
    d = nb2dict(nb)
    d['cells'] = [{k: v for k, v in c.items() if k in _cell_keys} for c in d['cells']]  # nbdev's own keys would fail validation,
    for c in d['cells']: c['metadata'].pop('execution', None)                             # so would execnb's timings
    body, _ = exp.from_notebook_node(nbformat.reads(json.dumps(d), as_version=4))
    # Quarto's heading ids are lower case (nbdev's doc links, `module.html#symbol`, rely on it)
    body = re.sub(r'(<h\d id=")([^"]+)(">.*?<a class="anchor-link" href="#)([^"]+)"', lambda m: m[1]+m[2].lower()+m[3]+m[4].lower()+'"', body)
    return body, fm

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} – {site}</title><meta name="description" content="{desc_text}">
<link rel="icon" href="data:,"><link rel="stylesheet" href="{root}site.css"></head>
<body><nav class="sidebar"><a class="site-title" href="{root}index.html">{site}</a>{nav}</nav>
<main><header class="page-header"><h1 class="title">{title}</h1>{desc}</header>
{body}
<footer>Built from <code>nbs/{src}</code> by <code>tools/docs_site.py</code> (the Quarto site is built by <code>nbdev-docs</code>).</footer>
</main></body></html>
"""

CSS = """body { margin: 0; font: 16px/1.55 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #212529; display: flex; }
.sidebar { position: sticky; top: 0; height: 100vh; overflow-y: auto; box-sizing: border-box; width: 250px; flex: none;
  padding: 1.2rem 1rem; background: #f7f8fa; border-right: 1px solid #dee2e6; font-size: 0.92rem; }
.sidebar .site-title { display: block; font-weight: 700; font-size: 1.15rem; margin-bottom: 1rem; color: #2780e3; text-decoration: none; }
.sidebar ul { list-style: none; padding: 0; margin: 0; } .sidebar li { margin: 0.15rem 0; }
.sidebar li a { color: #343a40; text-decoration: none; display: block; padding: 0.1rem 0.4rem; border-radius: 4px; }
.sidebar li a:hover { background: #e9ecef; } .sidebar li a.active { background: #2780e3; color: #fff; }
.sidebar .section { font-weight: 600; margin-top: 0.8rem; padding-left: 0.4rem; } .sidebar .section ul { font-weight: 400; }
main { flex: 1; min-width: 0; max-width: 960px; padding: 1.5rem 2.5rem 3rem; }
.page-header { border-bottom: 1px solid #dee2e6; margin-bottom: 1.5rem; } h1.title { margin: 0 0 0.4rem; }
.description { font-size: 1.2rem; font-style: italic; opacity: 0.75; }
a { color: #2780e3; } img { max-width: 100%; } table { border-collapse: collapse; margin: 1rem 0; }
th, td { border-bottom: 1px solid #dee2e6; padding: 0.3rem 0.6rem; text-align: left; }
pre { background: #f7f8fa; padding: 0.7rem 0.9rem; border-radius: 4px; overflow-x: auto; font-size: 0.88rem; line-height: 1.4; }
code { font-size: 0.9em; } p code, li code, td code { background: #f1f3f5; padding: 0 0.2em; border-radius: 3px; }
.cell { margin: 0.8rem 0; } .output_area pre { background: none; border-left: 2px solid lightsalmon; border-radius: 0; }
table { display: block; max-width: 100%; overflow-x: auto; } pre { max-width: 100%; overflow-x: auto; }   /* wide tables and lines scroll inside the page */
.celltag_show_doc { margin: 1.5rem 0; } .celltag_show_doc hr { display: none; }
.celltag_show_doc .output_area { border: 1px solid #dee2e6; border-radius: 6px; padding: 0 1rem; box-shadow: 0 1px 2px rgba(0,0,0,.05); }
.celltag_show_doc .output_area pre { border-left: none; background: #f7f8fa; }
.anchor-link { visibility: hidden; margin-left: 0.3rem; text-decoration: none; } :hover > .anchor-link { visibility: visible; }
details.code-fold > summary { cursor: pointer; color: #6c757d; }
footer { margin-top: 3rem; font-size: 0.8rem; color: #6c757d; }
"""

def nav_html(current, root, titles):
    out = ['<ul>']
    for section, nbl in pages():
        items = ''.join(f'<li><a href="{root}{html_path(p)}"{" class=active" if p == current else ""}>{html.escape(titles[p])}</a></li>' for p in nbl)
        out.append(items if section is None else f'<li class="section">{html.escape(section)}<ul>{items}</ul></li>')
    return ''.join(out) + '</ul>'

def build(out=ROOT/'_site', only=None):
    "Render the notebooks (those matching a glob of `only`, else all) into a static site in `out`; returns (notebooks, [(notebook, error)])"
    from pygments.formatters import HtmlFormatter
    from nbconvert.filters.markdown_mistune import markdown2html_mistune
    from nbdev.config import get_config, nbpath2html
    out = Path(out).resolve(); out.mkdir(parents=True, exist_ok=True)
    os.chdir(ROOT)  # as nbdev-docs does: processors and show_doc read the project's config from the working directory
    cfg = get_config()
    doc_url = f"{cfg.doc_host}{cfg.doc_baseurl}".rstrip('/') + '/'
    allnb = [p for _, l in pages() for p in l]
    fms = {p: front_matter(p) for p in allnb}
    titles = {p: fm.get('title', p.stem) for p, (fm, _) in fms.items()}
    todo = [p for p in allnb if not only or any(fnmatch.fnmatch(s, pat) for pat in only for s in (p.name, p.stem, p.relative_to(NBS).as_posix()))]
    for p in todo:
        if lost := fms[p][1]:
            print(f"warning: nbs/{p.relative_to(NBS).as_posix()}: nbdev drops its `# Title` cell, so {len(lost)} more lines of it are not in the docs "
                  f"(from {lost[0][:50]!r}): move them to a markdown cell of their own", file=sys.stderr)
    (out/'site.css').write_text(CSS + HtmlFormatter(style='default').get_style_defs('.highlight'))
    for f in NBS.rglob('*'):  # images the markdown refers to (images/app.png), at the same relative paths
        rel = f.relative_to(NBS)
        if f.suffix.lower() in ASSETS and not any(re.match(r'[_.]', s) for s in rel.parts):
            (out/rel).parent.mkdir(parents=True, exist_ok=True); shutil.copy2(f, out/rel)
    filt, exp, errors = processors(), exporter(), []
    for p in todo:
        dest = out/html_path(p)
        root = '../' * (len(Path(html_path(p)).parts) - 1)
        try: body, fm = to_html(process(p, filt), exp)
        except Exception as e:
            errors.append((p, f"{type(e).__name__}: {e}")); continue
        body = body.replace(f'href="{doc_url}', f'href="{root}')  # nbdev's doc links point at the published site
        body = _nb_link.sub(lambda m: f'href="{m[1] or ""}{nbpath2html(Path(m[2])).name}', body)  # links to notebooks, as Quarto does
        title, desc = fm.get('title', titles[p]), fm.get('description', '')
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(PAGE.format(title=html.escape(title), site=html.escape(cfg.title), root=root, src=p.relative_to(NBS).as_posix(),
                                    desc=f'<div class="description">{markdown2html_mistune(desc)}</div>' if desc else '',
                                    desc_text=html.escape(re.sub(r'[`*]', '', desc)), nav=nav_html(p, root, titles), body=body))
    return todo, errors

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--out', default='_site', help="output folder (default: _site)")
    ap.add_argument('--only', action='append', metavar='PATTERN', help="render only notebooks whose name or nbs/-relative path matches this glob (repeatable)")
    ap.add_argument('--sidebar', action='store_true', help="(re)write nbs/sidebar.yml and exit")
    a = ap.parse_args()
    if a.sidebar:
        (NBS/'sidebar.yml').write_text(sidebar_yml()); return print(f"wrote {NBS/'sidebar.yml'}")
    t0, out = time.time(), Path(a.out).resolve()
    todo, errors = build(out, a.only)
    for p, e in errors: print(f"FAILED {p.relative_to(ROOT)}: {e}", file=sys.stderr)
    print(f"{len(todo) - len(errors)} pages written to {out} in {time.time() - t0:.1f} s" + (f", {len(errors)} failed" if errors else ''))
    sys.exit(1 if errors or not todo else 0)

if __name__ == '__main__': main()
