"""The stylesheet inlined into every HTML page (no external resources: the pages open offline)."""

from __future__ import annotations

#: Content-Security-Policy of every page: nothing may be fetched, no script may run.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

CSS = """
:root { --fg:#1f2328; --muted:#59636e; --line:#d1d9e0; --soft:#f6f8fa; --pass:#1a7f37;
  --fail:#cf222e; --warn:#9a6700; --info:#0969da; --accent:#0b3d91; }
* { box-sizing: border-box; }
html { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
body { margin: 0; color: var(--fg); background: #fff; font: 14px/1.5 -apple-system,
  "Segoe UI", "Noto Sans", "DejaVu Sans", "Liberation Sans", Helvetica, Arial,
  sans-serif; }
main { max-width: 1060px; margin: 0 auto; padding: 28px 32px 48px; }
header.top { border-bottom: 3px solid var(--accent); padding-bottom: 14px; margin-bottom: 18px; }
header.top .kicker { color: var(--muted); text-transform: uppercase; letter-spacing: .08em;
  font-size: 11px; font-weight: 600; }
h1 { font-size: 26px; margin: 4px 0 2px; letter-spacing: -.01em; }
h2 { font-size: 19px; margin: 34px 0 10px; padding-bottom: 6px;
  border-bottom: 1px solid var(--line); }
h3 { font-size: 16px; margin: 22px 0 8px; }
h4 { font-size: 13px; margin: 16px 0 6px; text-transform: uppercase; letter-spacing: .05em;
  color: var(--muted); }
p { margin: 6px 0; }
.muted { color: var(--muted); }
.small { font-size: 12px; }
td code { white-space: nowrap; }
code, .mono { font-family: "DejaVu Sans Mono", "Liberation Mono", Menlo, Consolas, monospace;
  font-size: 12px; }
nav.toc { font-size: 13px; margin: 10px 0 0; color: var(--muted); }
nav.toc a { color: var(--info); text-decoration: none; margin-right: 14px; }
.verdict { display: flex; gap: 22px; align-items: center; padding: 18px 22px; border-radius: 10px;
  border: 1px solid var(--line); background: var(--soft); }
.verdict .big { font-size: 30px; font-weight: 800; letter-spacing: .02em; padding: 4px 18px;
  border-radius: 8px; color: #fff; min-width: 128px; text-align: center; white-space: nowrap; }
.verdict.pass .big { background: var(--pass); } .verdict.fail .big { background: var(--fail); }
.verdict .headline { font-size: 17px; font-weight: 600; }
.rehearsal { margin: 0 0 10px; padding: 10px 14px; border-radius: 8px; font-weight: 600;
  font-size: 13px; background: #fff8c5; color: #7d4e00; border: 1px solid #eed888; }
.kpis { display: grid; grid-template-columns: repeat(5, 1fr); gap: 10px; margin: 14px 0 6px; }
.kpi { border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; background: #fff; }
.kpi .v { font-size: 22px; font-weight: 700; } .kpi .k { font-size: 11.5px; color: var(--muted); }
.kpi.bad .v { color: var(--fail); } .kpi.good .v { color: var(--pass); }
.kpi.warn .v { color: var(--warn); }
table { border-collapse: collapse; width: 100%; margin: 8px 0 14px; font-size: 13px; }
th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid var(--line);
  vertical-align: top; }
th { background: var(--soft); font-size: 11.5px; text-transform: uppercase; letter-spacing: .04em;
  color: var(--muted); font-weight: 600; }
table.runs td:first-child { white-space: nowrap; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
dl.facts { display: grid; grid-template-columns: 170px 1fr; gap: 3px 14px; margin: 10px 0;
  font-size: 13px; } dl.facts dt { color: var(--muted); } dl.facts dd { margin: 0; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 11.5px;
  font-weight: 700; letter-spacing: .03em; border: 1px solid transparent; white-space: nowrap; }
.badge.pass, .badge.ok, .badge.met, .badge.closed { background: #dafbe1; color: #116329;
  border-color: #aceebb; }
.badge.fail, .badge.error, .badge.breach, .badge.overdue, .badge.critical, .badge.high,
.badge.open { background: #ffebe9; color: #a40e26; border-color: #ffcecb; }
.badge.never, .badge.medium, .badge.warn { background: #fff8c5; color: #7d4e00;
  border-color: #f5e0a0; }
.badge.skipped, .badge.low, .badge.exercised, .badge.not-exercised, .badge.carried {
  background: #eef1f4; color: #424a53; border-color: #d1d9e0; }
section.drill { margin-top: 30px; }
.drillhead { display: flex; justify-content: space-between; align-items: baseline; gap: 12px; }
.drillhead h3 { margin: 0; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(300px, 1fr)); gap: 10px;
  margin: 10px 0; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; }
.card .t { font-size: 11.5px; color: var(--muted); text-transform: uppercase;
  letter-spacing: .04em; }
.card .v { font-size: 18px; font-weight: 700; margin: 2px 0 4px; }
.card.bad { border-color: #ffcecb; background: #fffafa; }
figure { margin: 10px 0; } figcaption { font-size: 12px; color: var(--muted); }
.legend { font-size: 12px; color: var(--muted); display: flex; gap: 14px; flex-wrap: wrap; }
.legend i { display: inline-block; width: 12px; height: 10px; margin-right: 4px;
  vertical-align: -1px; border-radius: 2px; }
svg.chart { display: block; max-width: 100%; height: auto; font-family: inherit; }
svg .grid { stroke: #eaeef2; stroke-width: 1; } svg .sep { stroke: #d1d9e0; }
svg .tick { font-size: 11px; fill: var(--muted); }
svg .axis { font-size: 11.5px; fill: var(--muted); }
svg .lane { font-size: 12px; font-weight: 600; fill: var(--fg); }
svg .lbl { font-size: 11px; fill: var(--fg); }
svg .ok { stroke: #2da44e; stroke-width: 1.6; } svg .bad { stroke: var(--fail); stroke-width: 1.6; }
svg .outage { fill: rgba(207,34,46,.10); }
svg .fault { fill: #fdb47a; stroke: #bc4c00; stroke-width: .8; }
svg .fault.open { fill: #ff8182; }
svg .step.passed { fill: #54aeff; } svg .step.failed { fill: var(--fail); }
svg .step.error { fill: #82071e; } svg .step.skipped { fill: #d1d9e0; }
svg .mark { stroke-width: 1.4; stroke-dasharray: 4 3; }
svg .marklbl { font-size: 11px; font-weight: 700; }
svg .m-fault { stroke: var(--fail); fill: var(--fail); }
svg .m-detect { stroke: var(--warn); fill: var(--warn); }
svg .m-recover { stroke: var(--pass); fill: var(--pass); }
svg .m-capacity { stroke: var(--info); fill: var(--info); }
svg .m-other { stroke: #8250df; fill: #8250df; }
svg .m-objective { stroke: #1f2328; fill: #1f2328; }
svg text.inbar { fill: #fff; font-weight: 600; }
svg text.marklbl { stroke: none; }
svg .track { fill: #eaeef2; } svg .bar.met { fill: #2da44e; } svg .bar.breach { fill: var(--fail); }
svg .unc { fill: rgba(0,0,0,.28); }
svg .objective { stroke: var(--fg); stroke-width: 1.5; stroke-dasharray: 5 3; }
svg .series { stroke-width: 2; fill: none; }
svg .series.s0 { stroke: #0969da; } svg .series.s1 { stroke: #8250df; }
svg .series.s2 { stroke: #1b7c83; } svg .series.s3 { stroke: #bf3989; }
svg .pt { stroke: #fff; stroke-width: 1.5; }
svg .pt.s0 { fill: #0969da; } svg .pt.s1 { fill: #8250df; } svg .pt.s2 { fill: #1b7c83; }
svg .pt.s3 { fill: #bf3989; }
svg .pt.breach { fill: var(--fail); stroke: #fff; }
svg .pt.zero { fill: #fff; stroke-width: 2; }
svg .pt.zero.s0 { stroke: #0969da; } svg .pt.zero.s1 { stroke: #8250df; }
svg .pt.zero.s2 { stroke: #1b7c83; } svg .pt.zero.s3 { stroke: #bf3989; }
.legend i.s0 { background: #0969da; } .legend i.s1 { background: #8250df; }
.legend i.s2 { background: #1b7c83; } .legend i.s3 { background: #bf3989; }
.sign { display: grid; grid-template-columns: repeat(3, 1fr); gap: 18px; margin-top: 18px; }
.sign div { border-top: 1px solid var(--fg); padding-top: 4px; font-size: 12px; color: var(--muted);
  min-height: 58px; }
.sign div b { display: block; color: var(--fg); font-size: 13px; }
footer { margin-top: 40px; padding-top: 10px; border-top: 1px solid var(--line); font-size: 11.5px;
  color: var(--muted); }
@page { size: A4; margin: 14mm 12mm 16mm; }
@media print {
  body { font-size: 10pt; } main { max-width: none; padding: 0; }
  nav.toc { display: none; }
  section.drill, section.pagebreak { break-before: page; }
  h2, h3, h4, .drillhead { break-after: avoid; }
  table, figure, .card, .kpis, .verdict, tr, .sign, svg, section.series {
    break-inside: avoid; }
  .kpis { grid-template-columns: repeat(5, 1fr); }
  a { color: inherit; text-decoration: none; }
}
"""
