// Small SVG line charts for the metrics history: one per measure, time on x, the last 15 minutes.
const SVG = 'http://www.w3.org/2000/svg';

function el(name, attrs = {}, parent) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (parent) parent.appendChild(e);
  return e;
}

// series: [{t, ...}], lines: [{field, name, scale?}], unit: label suffix
export function lineChart(title, series, lines, unit, floor = 1e-9) {
  const W = 320, H = 110, L = 40, B = 18;
  const box = document.createElement('figure');
  box.className = 'chart';
  const caption = document.createElement('figcaption');
  const svg = el('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H });
  const points = series.filter((p) => p);
  const values = [];
  for (const p of points) for (const l of lines) if (p[l.field] != null) values.push(p[l.field] * (l.scale ?? 1));
  const max = Math.max(floor, ...values) * 1.1;
  const t0 = points.length ? points[0].t : 0;
  const t1 = points.length ? points[points.length - 1].t : 1;
  const x = (t) => L + ((t - t0) / Math.max(1, t1 - t0)) * (W - L - 4);
  const y = (v) => 4 + (1 - v / max) * (H - B - 8);
  el('line', { x1: L, y1: H - B, x2: W - 4, y2: H - B, class: 'axis' }, svg);
  el('line', { x1: L, y1: 4, x2: L, y2: H - B, class: 'axis' }, svg);
  const top = el('text', { x: L - 4, y: 12, 'text-anchor': 'end', class: 'tick' }, svg);
  top.textContent = max >= 100 ? max.toFixed(0) : max.toPrecision(2);
  const zero = el('text', { x: L - 4, y: H - B, 'text-anchor': 'end', class: 'tick' }, svg);
  zero.textContent = '0';
  const span = el('text', { x: W - 4, y: H - 4, 'text-anchor': 'end', class: 'tick' }, svg);
  const seconds = Math.round((t1 - t0) / 1000);
  span.textContent = !points.length ? 'waiting for samples' : seconds < 120 ? `last ${seconds} s` : `last ${Math.round(seconds / 60)} min`;
  const legend = [];
  lines.forEach((l, i) => {
    const d = points.filter((p) => p[l.field] != null).map((p, j) => `${j ? 'L' : 'M'}${x(p.t).toFixed(1)},${y(p[l.field] * (l.scale ?? 1)).toFixed(1)}`).join(' ');
    if (d) el('path', { d, class: `series s${i}` }, svg);
    const last = [...points].reverse().find((p) => p[l.field] != null);
    legend.push(`<span class="s${i}">${l.name} ${last ? (last[l.field] * (l.scale ?? 1)).toFixed(l.digits ?? 1) : '–'}${unit}</span>`);
  });
  caption.innerHTML = `<b>${title}</b> ${legend.join(' ')}`;
  box.append(caption, svg);
  return box;
}

export function trafficCharts(series) {
  const wrap = document.createElement('div');
  wrap.className = 'charts';
  wrap.append(
    lineChart('requests', series, [{ field: 'rps', name: 'req/s' }], '', 1),
    lineChart('errors', series, [{ field: 'ratio5xx', name: '5xx', scale: 100 }, { field: 'ratio4xx', name: '4xx', scale: 100 }, { field: 'ratio3xx', name: '3xx', scale: 100 }], '%', 1),
    lineChart('latency', series, [{ field: 'p50', name: 'p50' }, { field: 'p95', name: 'p95' }, { field: 'p99', name: 'p99' }], ' ms', 1),
  );
  return wrap;
}
