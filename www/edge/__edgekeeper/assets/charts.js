// Hand-written SVG charts for the dashboard: a time-series line chart (with an optional state band
// underneath, e.g. the breaker) and a horizontal bar chart. Charts are drawn at the container's
// real pixel width, so labels stay legible on a phone; call the returned `redraw` on resize.

const NS = 'http://www.w3.org/2000/svg';

function s(tag, attrs = {}, text) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

/** A round top for an axis with four intervals: 4 × (1, 2 or 5 × 10^n), at or above `v`. */
export function niceMax(v) {
  if (!(v > 0)) return 4;
  const raw = v / 4;
  const exp = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) if (m * exp >= raw) return 4 * m * exp;
  return 40 * exp;
}

const clock = new Intl.DateTimeFormat('en-GB', { hour: '2-digit', minute: '2-digit', second: '2-digit' });
const tick = (v) => String(Math.round(v * 1000) / 1000);

function widthOf(container, fallback = 640) {
  const w = Math.floor(container.clientWidth || 0);
  return w > 120 ? w : fallback;
}

function legend(items) {
  const div = document.createElement('div');
  div.className = 'legend';
  for (const { cls, label } of items) {
    const span = document.createElement('span');
    const i = document.createElement('i');
    i.className = cls;
    span.append(i, document.createTextNode(label));
    div.append(span);
  }
  return div;
}

/**
 * Line chart over time. `series`: [{key, label, cls, values: [[t_ms, number|null], ...]}];
 * `bands`: optional [[t_ms, state], ...] drawn as a strip under the plot (classes `band-<state>`).
 */
export function lineChart(container, { series, bands = null, bandLabel = '', unit = '', label = 'chart', height = 200 }) {
  const W = widthOf(container);
  const H = height + (bands ? 14 : 0);
  const m = { l: 44, r: 14, t: 10, b: 24 + (bands ? 14 : 0) };
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const points = series.flatMap((x) => x.values.filter(([, v]) => typeof v === 'number'));
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', 'aria-label': label, 'data-points': points.length });
  if (points.length === 0) {
    svg.append(s('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', class: 'empty-note' }, 'Waiting for data…'));
    container.replaceChildren(svg);
    return;
  }
  const times = series.flatMap((x) => x.values.map(([t]) => t)).concat(bands ? bands.map(([t]) => t) : []);
  const t0 = Math.min(...times);
  const t1 = Math.max(...times);
  const span = Math.max(1, t1 - t0);
  const x = (t) => (t1 === t0 ? m.l + pw / 2 : m.l + ((t - t0) / span) * pw);
  const top = niceMax(Math.max(...points.map(([, v]) => v)));
  const y = (v) => m.t + ph - (v / top) * ph;

  const grid = s('g', { class: 'grid' });
  for (let i = 0; i <= 4; i++) {
    const v = (top * i) / 4;
    grid.append(s('line', { x1: m.l, x2: W - m.r, y1: y(v), y2: y(v) }));
    grid.append(s('text', { x: m.l - 6, y: y(v) + 4, 'text-anchor': 'end' }, `${tick(v)}${i === 4 ? unit : ''}`));
  }
  svg.append(grid);
  svg.append(s('text', { x: m.l, y: H - 4, 'text-anchor': 'start' }, clock.format(t0)));
  if (t1 !== t0) svg.append(s('text', { x: W - m.r, y: H - 4, 'text-anchor': 'end' }, clock.format(t1)));

  for (const ser of series) {
    const vals = ser.values.filter(([, v]) => typeof v === 'number');
    const g = s('g', { 'data-series': ser.key, 'data-points': vals.length, 'data-last': vals.length ? String(vals[vals.length - 1][1]) : '' });
    if (vals.length > 1) {
      g.append(s('polyline', { class: `line ${ser.cls}`, points: vals.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(' ') }));
    }
    if (vals.length) {
      const [t, v] = vals[vals.length - 1];
      const dot = s('circle', { class: ser.cls, cx: x(t).toFixed(1), cy: y(v).toFixed(1), r: 3.5 });
      dot.append(s('title', {}, `${ser.label}: ${v}${unit}`));
      g.append(dot);
    }
    svg.append(g);
  }

  const items = series.map((ser) => ({ cls: ser.cls, label: ser.label }));
  if (bands && bands.length) {
    const by = m.t + ph + 6;
    const g = s('g', { 'data-series': 'band', 'data-points': bands.length });
    bands.forEach(([t, state], i) => {
      const xa = x(t);
      const xb = i + 1 < bands.length ? x(bands[i + 1][0]) : Math.max(xa + 4, W - m.r);
      const r = s('rect', { class: `band-${state || 'unknown'}`, x: xa.toFixed(1), y: by, width: Math.max(2, xb - xa).toFixed(1), height: 8, rx: 2 });
      r.append(s('title', {}, `${bandLabel} ${state} at ${clock.format(t)}`));
      g.append(r);
    });
    svg.append(g);
    const states = [...new Set(bands.map(([, st]) => st || 'unknown'))];
    for (const st of states) items.push({ cls: `band-${st}`, label: `${bandLabel} ${st}` });
  }
  container.replaceChildren(svg, legend(items));
}

/**
 * Horizontal bar chart. `bars`: [{key, label, value, cls?, title?}]; `max` fixes the scale (e.g. 100
 * for percentages); `suffix` follows each value label.
 */
export function barChart(container, { bars, max = null, suffix = '', label = 'chart', labelWidth = null }) {
  const W = widthOf(container);
  const longest = Math.max(1, ...bars.map((b) => String(b.label).length));
  labelWidth = labelWidth ?? Math.round(Math.min(W * 0.45, Math.max(60, longest * 6.4 + 12)));
  const row = 26;
  const H = Math.max(row, bars.length * row) + 4;
  const x0 = labelWidth;
  const valueRoom = 64;
  const aw = Math.max(40, W - x0 - valueRoom);
  const top = max ?? niceMax(Math.max(0, ...bars.map((b) => b.value || 0)));
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', 'aria-label': label, 'data-bars': bars.length });
  bars.forEach((b, i) => {
    const y = i * row + 4;
    const v = typeof b.value === 'number' ? b.value : 0;
    const w = top > 0 ? (Math.min(v, top) / top) * aw : 0;
    const g = s('g', { 'data-key': b.key, 'data-value': String(v) });
    if (b.title) g.append(s('title', {}, b.title));
    g.append(s('text', { x: x0 - 8, y: y + 13, 'text-anchor': 'end' }, b.label));
    g.append(s('rect', { class: 'bar-bg', x: x0, y: y + 2, width: aw.toFixed(1), height: 14, rx: 4 }));
    g.append(s('rect', { class: `bar ${b.cls || 's1'}`, x: x0, y: y + 2, width: w.toFixed(1), height: 14, rx: 4 }));
    g.append(s('text', { class: 'value', x: x0 + aw + 6, y: y + 13 }, `${v}${suffix}`));
    svg.append(g);
  });
  container.replaceChildren(svg);
}
