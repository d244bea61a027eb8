/*
 * flowscope's web view (docs/web.md): plain JavaScript, no library, no build step.
 *
 * The state is the URL's fragment, #/VIEW?key=value&..., so every view is a link that can be
 * bookmarked or sent: the time range (from, to: epoch seconds with nine fraction digits,
 * exact to the nanosecond) carries over to every view; the filter, sort and page are the
 * flows view's; a flow is its 5-tuple, VLAN ids and time span.  Nanosecond times are BigInts
 * (a Number cannot hold them).  Every answer comes from the server's JSON API (docs/api.md);
 * an API error ({"error": ...}) is shown as it is, next to what caused it.
 */
'use strict';

const PAGE = 100; /* flows per page */
const LIVE_MS = 3000; /* the live view's refresh */

/* ---- small helpers ---------------------------------------------------------------------- */

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const k of kids.flat()) if (k !== null && k !== undefined) e.append(k);
  return e;
}

function svg(tag, attrs) {
  const e = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}

/* ns (BigInt) <-> "S.NNNNNNNNN" (what the API's from/to take) */
function nsToSec(ns) {
  const s = ns / 1000000000n, f = ns % 1000000000n;
  return `${s}.${f.toString().padStart(9, '0')}`;
}
function secToNs(s) {
  const m = /^(\d+)(?:\.(\d{1,9}))?$/.exec(s || '');
  if (!m) return null;
  return BigInt(m[1]) * 1000000000n + BigInt((m[2] || '').padEnd(9, '0'));
}
/* RFC 3339 as the API writes it (UTC, "Z", up to nine digits) -> ns */
function rfcToNs(t) {
  const m = /^(.*?)(?:\.(\d{1,9}))?Z$/.exec(t);
  if (!m) return null;
  return BigInt(Date.parse(m[1] + 'Z')) * 1000000n + BigInt((m[2] || '').padEnd(9, '0'));
}
function nsToText(ns) {
  const ms = ns / 1000000n, frac = (ns % 1000000000n).toString().padStart(9, '0');
  return new Date(Number(ms)).toISOString().slice(0, 19).replace('T', ' ') + '.' + frac;
}
function fmtCount(n) { return Number(n).toLocaleString('en-US'); }
function fmtBytes(n) {
  n = Number(n);
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(n < 10 ? 2 : 1) : n) + ' ' + u[i];
}
function fmtBits(bytesPerSec) {
  let n = bytesPerSec * 8, i = 0;
  const u = ['bit/s', 'kbit/s', 'Mbit/s', 'Gbit/s', 'Tbit/s'];
  while (n >= 1000 && i < u.length - 1) { n /= 1000; i++; }
  return n.toFixed(i && n < 10 ? 2 : i ? 1 : 0) + ' ' + u[i];
}
function fmtDuration(s) {
  if (s < 1) return (s * 1000).toFixed(s < 0.01 ? 3 : 1) + ' ms';
  if (s < 120) return s.toFixed(2) + ' s';
  if (s < 7200) return (s / 60).toFixed(1) + ' min';
  return (s / 3600).toFixed(1) + ' h';
}
function shellQuote(s) { return "'" + s.replace(/'/g, "'\\''") + "'"; }

/* ---- the URL's state -------------------------------------------------------------------- */

function readState() {
  const h = location.hash.replace(/^#\/?/, '');
  const q = h.indexOf('?');
  const view = (q < 0 ? h : h.slice(0, q)) || 'timeline';
  return { view, p: new URLSearchParams(q < 0 ? '' : h.slice(q + 1)) };
}
function link(view, params) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') p.set(k, v);
  const s = p.toString();
  return '#/' + view + (s ? '?' + s : '');
}
function rangeParams(p) { return { from: p.get('from'), to: p.get('to') }; }
function go(view, params) { location.hash = link(view, params); }

/* ---- the API ---------------------------------------------------------------------------- */

class ApiError extends Error {}

function apiParams(params) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) if (v !== undefined && v !== null && v !== '') p.set(k, v);
  return p;
}
/* An answer that is not a 200: its {"error": ...} (or its text) as an ApiError. */
function apiFail(r, text) {
  let msg = text;
  try { msg = JSON.parse(text).error || text; } catch (e) { /* not JSON: the text */ }
  return new ApiError(msg + ` (HTTP ${r.status})`);
}
async function api(path, params) {
  const p = apiParams(params);
  const url = path + (p.toString() ? '?' + p : '');
  const r = await fetch(url, { headers: { Accept: 'application/json' } });
  const text = await r.text();
  if (!r.ok) throw apiFail(r, text);
  return { r, text };
}
/* POST a form (application/x-www-form-urlencoded); the answer's text. */
async function apiPost(path, params) {
  const r = await fetch(path, { method: 'POST', headers: { Accept: 'application/json' }, body: apiParams(params) });
  const text = await r.text();
  if (!r.ok) throw apiFail(r, text);
  return text;
}
async function apiJson(path, params) { return JSON.parse((await api(path, params)).text); }
async function apiLines(path, params) {
  const { r, text } = await api(path, params);
  return { r, rows: text.split('\n').filter((l) => l).map((l) => JSON.parse(l)) };
}
function errorBox(e) {
  return el('p', { class: 'error', role: 'alert', text: e instanceof ApiError ? e.message : String(e) });
}

/* ---- the header: the range every view shares ---------------------------------------------- */

function showRange(p) {
  const from = secToNs(p.get('from')), to = secToNs(p.get('to'));
  const clear = document.getElementById('range-clear');
  const text = document.getElementById('range-text');
  if (from === null && to === null) {
    text.textContent = 'whole archive';
    clear.hidden = true;
    return;
  }
  text.textContent = (from !== null ? nsToText(from) : '…') + ' → ' + (to !== null ? nsToText(to) : '…') + ' UTC';
  clear.hidden = false;
}

/* ---- the timeline view ------------------------------------------------------------------ */

const W = 1000, H = 220, PAD = 18;

function drawChart(box, tl, marks, onRange) {
  const n = tl.bucket_packets.length;
  const chart = svg('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none',
    role: 'img', tabindex: '0', id: 'chart',
    'aria-label': 'Packets and bytes over time. Drag, or use the arrow keys and Enter, to zoom into a range.' });
  const maxP = Math.max(1, ...tl.bucket_packets), maxB = Math.max(1, ...tl.bucket_bytes);
  const bw = W / Math.max(1, n), ph = H - PAD;
  for (let i = 0; i < n; i++) {
    const hb = (tl.bucket_bytes[i] / maxB) * ph, hp = (tl.bucket_packets[i] / maxP) * ph;
    if (hb > 0) chart.append(svg('rect', { class: 'bar bytes', x: i * bw, y: ph - hb, width: Math.max(bw * 0.9, 0.5), height: hb }));
    if (hp > 0) chart.append(svg('rect', { class: 'bar', x: i * bw + bw * 0.25, y: ph - hp, width: Math.max(bw * 0.45, 0.5), height: hp }));
  }
  const from = BigInt(tl.from_ns), to = BigInt(tl.to_ns), span = to - from;
  const xOf = (ns) => Number(((ns - from) * 1000000n) / (span || 1n)) / 1000000 * W;
  for (const m of marks) {
    if (m < from || m >= to) continue;
    const x = xOf(m);
    chart.append(svg('line', { class: 'mark', x1: x, x2: x, y1: 0, y2: ph }));
  }
  for (const [x, anchor, ns] of [[2, 'start', from], [W - 2, 'end', to]]) {
    const t = svg('text', { x, y: H - 4, 'text-anchor': anchor });
    t.textContent = nsToText(ns).slice(0, 23);
    chart.append(t);
  }
  const sel = svg('rect', { class: 'sel', x: 0, y: 0, width: 0, height: ph, visibility: 'hidden' });
  const cursor = svg('line', { class: 'cursor', x1: 0, x2: 0, y1: 0, y2: ph, visibility: 'hidden' });
  chart.append(sel, cursor);
  const nsAt = (x) => from + (span * BigInt(Math.round(Math.min(Math.max(x, 0), W) * 1000))) / BigInt(W * 1000);
  const xIn = (ev) => { const r = chart.getBoundingClientRect(); return ((ev.clientX - r.left) / r.width) * W; };
  let x0 = null;
  chart.addEventListener('pointerdown', (ev) => { x0 = xIn(ev); chart.setPointerCapture(ev.pointerId); });
  chart.addEventListener('pointermove', (ev) => {
    if (x0 === null) return;
    const x1 = xIn(ev);
    sel.setAttribute('x', Math.min(x0, x1)); sel.setAttribute('width', Math.abs(x1 - x0));
    sel.setAttribute('visibility', 'visible');
  });
  chart.addEventListener('pointerup', (ev) => {
    if (x0 === null) return;
    const x1 = xIn(ev), a = Math.min(x0, x1), b = Math.max(x0, x1);
    x0 = null;
    sel.setAttribute('visibility', 'hidden');
    if (b - a >= 3) onRange(nsAt(a), nsAt(b));
  });
  /* keyboard: arrows move a cursor over the buckets, Shift+arrows widen a selection, Enter zooms */
  let ci = -1, ca = -1;
  const show = () => {
    const lo = Math.min(ca, ci), hi = Math.max(ca, ci);
    cursor.setAttribute('x1', (ci + 0.5) * bw); cursor.setAttribute('x2', (ci + 0.5) * bw);
    cursor.setAttribute('visibility', 'visible');
    sel.setAttribute('x', lo * bw); sel.setAttribute('width', (hi - lo + 1) * bw);
    sel.setAttribute('visibility', 'visible');
  };
  chart.addEventListener('keydown', (ev) => {
    if (ev.key === 'ArrowLeft' || ev.key === 'ArrowRight') {
      const step = ev.key === 'ArrowLeft' ? -1 : 1;
      ci = ci < 0 ? Math.floor(n / 2) : Math.min(Math.max(ci + step, 0), n - 1);
      if (!ev.shiftKey || ca < 0) ca = ci;
      show(); ev.preventDefault();
    } else if (ev.key === 'Enter' && ci >= 0) {
      const lo = Math.min(ca, ci), hi = Math.max(ca, ci);
      onRange(from + BigInt(tl.bucket_ns) * BigInt(lo), from + BigInt(tl.bucket_ns) * BigInt(hi + 1));
    }
  });
  box.append(chart);
}

async function viewTimeline(main, p) {
  const range = rangeParams(p);
  main.append(el('h1', { text: 'Timeline' }));
  const [tl, trig] = await Promise.all([
    apiJson('/api/v1/timeline', { ...range, buckets: 300 }),
    apiLines('/api/v1/flows', { ...range, triggered: 'true', limit: 2000 }).then((x) => x.rows),
  ]);
  const marks = trig.map((f) => rfcToNs(f.first));
  const span = Number(BigInt(tl.to_ns) - BigInt(tl.from_ns)) / 1e9;
  main.append(el('div', { class: 'stats' },
    el('div', { class: 'stat' }, el('b', { id: 'tl-packets', text: fmtCount(tl.packets) }), el('span', { text: 'packets' })),
    el('div', { class: 'stat' }, el('b', { text: fmtBytes(tl.wire_bytes) }), el('span', { text: 'on the wire' })),
    el('div', { class: 'stat' }, el('b', { text: fmtDuration(span) }), el('span', { text: 'time span' })),
    el('div', { class: 'stat' }, el('b', { text: fmtDuration(Number(tl.bucket_ns) / 1e9) }), el('span', { text: 'per bar' })),
    el('div', { class: 'stat' }, el('b', { text: fmtCount(trig.length) }), el('span', { text: 'triggered flows' }))));
  main.append(el('div', { class: 'legend' },
    el('span', {}, el('i', { class: 'sw p' }), 'packets'), el('span', {}, el('i', { class: 'sw b' }), 'bytes'),
    el('span', {}, el('i', { class: 'sw m' }), 'a trigger fired (a triggered flow began)')));
  const box = el('div', {});
  main.append(box);
  drawChart(box, tl, marks, (a, b) => go('timeline', { ...Object.fromEntries(p), from: nsToSec(a), to: nsToSec(b) }));
  const zoomOut = () => {
    const f = BigInt(tl.from_ns), t = BigInt(tl.to_ns), d = t - f;
    go('timeline', { ...Object.fromEntries(p), from: nsToSec(f > d ? f - d : 0n), to: nsToSec(t + d) });
  };
  main.append(el('div', { class: 'actions' },
    el('button', { type: 'button', onclick: zoomOut, text: 'Zoom out' }),
    el('a', { class: 'button primary', href: link('flows', range), text: 'Flows in this range' }),
    el('a', { class: 'button', href: link('flows', { ...range, triggered: 'true' }), text: 'Triggered flows' }),
    el('a', { class: 'button', href: link('query', range), text: 'Query this range' })));
  main.append(el('p', { class: 'note', text: 'From the index alone (no packet is read): ' + fmtCount(tl.frames) +
    ' frames in ' + fmtCount(tl.segments) + ' segments. A frame spanning several bars is spread evenly over them.' }));
}

/* ---- the flows view --------------------------------------------------------------------- */

const FLOW_COLS = [
  ['first', 'First', 'time'], ['duration', 'Duration', 'duration'], ['proto', 'Proto'], ['a', 'A'], ['b', 'B'],
  ['vlan', 'VLAN'], ['packets_ab', 'Pkts A→B', 'packets'], ['packets_ba', 'Pkts B→A'],
  ['bytes_ab', 'Bytes A→B', 'bytes'], ['bytes_ba', 'Bytes B→A'], ['tcp_flags', 'Flags'], ['trigger', 'Trigger'],
];
function vlanText(f) { return f.vlan_inner ? `${f.vlan}/${f.vlan_inner}` : f.vlan ? String(f.vlan) : '-'; }
function cellText(f, k) {
  if (k === 'vlan') return vlanText(f);
  if (k === 'duration') return f.duration.toFixed(9);
  return String(f[k]);
}

/* A flow's link: its key and span (the flow view rebuilds its filter from them). */
function flowParams(f) {
  return { proto: f.proto, a: f.a, b: f.b, vlan: f.vlan || '', vlan_inner: f.vlan_inner || '',
    first: nsToSec(rfcToNs(f.first)), last: nsToSec(rfcToNs(f.last)) };
}

/* The last summaries (GET /api/v1/flows/summary), by filter and range, for 30 s: paging and
   sorting do not change them, and with a filter each costs the filter's query (a recording
   archive grows: after 30 s it is asked again). */
const summaries = new Map();
function flowsSummary(params) {
  const key = JSON.stringify(params), now = Date.now(), hit = summaries.get(key);
  if (hit && now - hit.at < 30000) return hit.answer;
  if (summaries.size >= 20) summaries.delete(summaries.keys().next().value);
  const answer = apiJson('/api/v1/flows/summary', params).catch((e) => { summaries.delete(key); throw e; });
  summaries.set(key, { at: now, answer });
  return answer;
}

async function viewFlows(main, p) {
  const range = rangeParams(p), filter = p.get('filter') || '', sort = p.get('sort') || 'time';
  const triggered = p.get('triggered') === 'true' ? 'true' : ''; /* only flows a trigger archived */
  const page = Math.max(0, parseInt(p.get('page') || '0', 10) || 0);
  const per = Math.min(1000, Math.max(10, parseInt(p.get('per') || '', 10) || PAGE)); /* rows a page */
  const here = (extra) => link('flows', { ...Object.fromEntries(p), ...extra });
  main.append(el('h1', { text: 'Flows' }));
  const input = el('input', { type: 'search', id: 'filter', name: 'filter', value: filter, 'aria-label': 'Filter (tcpdump syntax)',
    placeholder: 'filter, tcpdump syntax: host 10.0.0.1 and port 443', spellcheck: 'false', autocomplete: 'off' });
  const trig = el('input', { type: 'checkbox', id: 'triggered', checked: !!triggered });
  main.append(el('form', { class: 'filter', id: 'flows-form', onsubmit: (ev) => {
    ev.preventDefault();
    location.hash = link('flows', { ...Object.fromEntries(p), filter: input.value.trim(), triggered: trig.checked ? 'true' : '', page: '' });
  } }, input, el('label', {}, trig, ' triggered only'), el('button', { class: 'primary', type: 'submit', text: 'Filter' })));
  const out = el('div', { id: 'flows-out', 'aria-busy': 'true' });
  main.append(out);
  let list, sum;
  try {
    [list, sum] = await Promise.all([
      apiLines('/api/v1/flows', { ...range, filter, triggered, sort, offset: page * per, limit: per }),
      flowsSummary({ ...range, filter, triggered }),
    ]);
  } catch (e) {
    out.append(errorBox(e));
    out.setAttribute('aria-busy', 'false');
    return;
  }
  const total = Number(list.r.headers.get('X-Flowscope-Flows-Total') || sum.flows);
  out.append(el('div', { class: 'stats' },
    el('div', { class: 'stat' }, el('b', { id: 'flows-total', text: fmtCount(total) }), el('span', { text: 'flows' })),
    el('div', { class: 'stat' }, el('b', { text: fmtCount(sum.packets) }), el('span', { text: 'packets' })),
    el('div', { class: 'stat' }, el('b', { text: fmtBytes(sum.bytes) }), el('span', { text: 'on the wire' }))));
  if (sum.frames_damaged) out.append(el('p', { class: 'error', text: `${sum.frames_damaged} damaged frames were left out: flows seen only there are missing` }));
  const head = el('tr', {}, FLOW_COLS.map(([k, label, key]) => {
    const num = /packets|bytes|duration/.test(k);
    const th = el('th', { scope: 'col', class: num ? 'num' : null, 'aria-sort': key && key === sort ? (key === 'time' ? 'ascending' : 'descending') : null });
    th.append(key ? el('button', { type: 'button', 'data-sort': key, title: `Sort by ${key}`,
      onclick: () => { location.hash = here({ sort: key, page: '' }); } }, label) : label);
    return th;
  }));
  const body = el('tbody', {}, list.rows.map((f) => {
    const href = link('flow', { ...range, ...flowParams(f) });
    return el('tr', { class: 'row', tabindex: '0', 'data-href': href,
      onclick: () => { location.hash = href; },
      onkeydown: (ev) => { if (ev.key === 'Enter') location.hash = href; } },
    FLOW_COLS.map(([k, label]) => el('td', { class: /packets|bytes|duration/.test(k) ? 'num' : null, 'data-label': label, text: cellText(f, k) })));
  }));
  const pages = Math.max(1, Math.ceil(total / per));
  const pager = el('nav', { class: 'pager', 'aria-label': 'Pages' },
    el('a', { class: 'button', id: 'prev', href: page > 0 ? here({ page: page - 1 || '' }) : null, 'aria-disabled': page > 0 ? null : 'true', text: '← Previous' }),
    el('span', { id: 'page-text', text: total ? `flows ${fmtCount(page * per + 1)}–${fmtCount(Math.min(total, (page + 1) * per))} of ${fmtCount(total)} (page ${page + 1} of ${fmtCount(pages)})` : 'no flows' }),
    el('a', { class: 'button', id: 'next', href: page + 1 < pages ? here({ page: page + 1 }) : null, 'aria-disabled': page + 1 < pages ? null : 'true', text: 'Next →' }));
  out.append(pager, el('div', { class: 'scroll' }, el('table', { id: 'flows' }, el('thead', {}, head), body)));
  const top = (title, rows, label, filterOf) => el('div', { class: 'panel' }, el('h2', { text: title }),
    rows.length ? el('ol', { class: 'top' }, rows.map((r) => el('li', {},
      el('a', { href: link('flows', { ...range, filter: filterOf(r) }) }, label(r)),
      ` — ${fmtBytes(r.bytes)}, ${fmtCount(r.packets)} packets, ${fmtCount(r.flows)} flows`))) : el('p', { class: 'note', text: 'none' }));
  out.append(el('div', { class: 'cols' },
    top('Top talkers', sum.top_talkers, (r) => r.addr, (r) => `host ${r.addr}`),
    top('Top ports', sum.top_ports, (r) => `${r.proto}/${r.port}`, (r) => (/^(tcp|udp|sctp)$/.test(r.proto) ? `${r.proto} ` : '') + `port ${r.port}`)));
  out.setAttribute('aria-busy', 'false');
}

/* ---- one flow --------------------------------------------------------------------------- */

/* "10.0.0.1:80" / "[fd00::1]:80" -> [addr, port] */
function splitEndpoint(s) {
  const m = /^\[(.*)\]:(\d+)$/.exec(s) || /^(.*):(\d+)$/.exec(s);
  return m ? [m[1], Number(m[2])] : [s, 0];
}

/* The flow's packets, both directions, as a tcpdump filter: exact on the 5-tuple and VLANs. */
function flowFilter(p) {
  const [a, pa] = splitEndpoint(p.get('a')), [b, pb] = splitEndpoint(p.get('b'));
  const proto = p.get('proto'), ports = pa || pb;
  const side = (x, px, y, py) => `src host ${x} and dst host ${y}` + (ports ? ` and src port ${px} and dst port ${py}` : '');
  const pr = /^(tcp|udp|sctp|icmp|icmp6)$/.test(proto) ? proto : /^\d+$/.test(proto) ? `proto ${proto}` : proto;
  let f = `${pr} and ((${side(a, pa, b, pb)}) or (${side(b, pb, a, pa)}))`;
  if (p.get('vlan_inner')) f = `vlan ${p.get('vlan')} and vlan ${p.get('vlan_inner')} and ${f}`;
  else if (p.get('vlan')) f = `vlan ${p.get('vlan')} and ${f}`;
  return f;
}

/* ---- a trigger on a flow ------------------------------------------------------------------ */

/* Whether the server is a recorder (record --listen, which serves POST /api/v1/trigger): its
   /metrics has the ring's gauges, as the live view decides.  Asked once a page load (a server
   does not change kind); a failed answer is asked again next time. */
let recorderProbe = null;
function isRecorder() {
  if (!recorderProbe) {
    recorderProbe = api('/metrics').then(({ text }) => metricHas(parseMetrics(text), 'flowscope_qq_fill_ratio'))
      .catch(() => { recorderProbe = null; return false; });
  }
  return recorderProbe;
}

/* The flow as the trigger API's flow parameter: PROTO A B [vlan OUTER[/INNER]] (docs/api.md):
   endpoints ADDR:PORT or [ADDR6]:PORT as flows writes them, but without the port (flows'
   ":0") for a protocol that has none (ICMP: the API refuses a port there). */
function flowTriggerSpec(p) {
  const ports = /^(tcp|udp|sctp)$/.test(p.get('proto'));
  const end = (s) => {
    if (ports) return s;
    const [addr] = splitEndpoint(s);
    return addr.includes(':') ? `[${addr}]` : addr;
  };
  const vlan = p.get('vlan') ? ` vlan ${p.get('vlan')}${p.get('vlan_inner') ? '/' + p.get('vlan_inner') : ''}` : '';
  return `${p.get('proto')} ${end(p.get('a'))} ${end(p.get('b'))}${vlan}`;
}

/* The trigger's answer (its JSON text: first_ns exceeds a Number, so it is read as a string). */
function triggerAnswer(text) {
  const a = JSON.parse(text.replace(/"first_ns": (\d+)/g, '"first_ns": "$1"'));
  const stat = (id, v, label) => el('div', { class: 'stat' }, el('b', { id, text: v }), el('span', { text: label }));
  const kids = [el('p', { id: 'trigger-summary', text: `matched ${fmtCount(a.matched)} flow${a.matched === 1 ? '' : 's'}, ` +
      `reached back ${fmtCount(a.packets)} packets (${a.trigger})` + (a.matched ? '' : ': no flow of the recorder\'s tables matched (not seen, or ended)') }),
    el('div', { class: 'stats' },
      stat('trigger-matched', fmtCount(a.matched), 'flows matched'),
      stat('trigger-packets', fmtCount(a.packets), 'packets reached back'),
      stat('trigger-lost', fmtCount(a.first_packet_lost), 'first packet lost'),
      stat('trigger-window', a.ring_window_s.toFixed(3) + ' s', 'ring window'),
      stat('trigger-for-s', a.for_s ? a.for_s.toFixed(3) + ' s' : '-', 'new flows for'))];
  if (a.flows.length) {
    kids.push(el('div', { class: 'scroll' }, el('table', { id: 'trigger-flows' },
      el('thead', {}, el('tr', {}, ['Flow', 'Community ID', 'Packets', 'First packet (UTC)', 'Back', 'Note']
        .map((h) => el('th', { scope: 'col', text: h })))),
      el('tbody', {}, a.flows.map((f) => el('tr', {},
        el('td', { class: 'mono', text: f.flow }), el('td', { class: 'mono', text: f.community_id || '-' }),
        el('td', { class: 'num', text: fmtCount(f.packets) }), el('td', { text: nsToText(BigInt(f.first_ns)) }),
        el('td', { class: 'num', text: f.seconds_back.toFixed(3) + ' s' }),
        el('td', { class: f.first_packet_lost ? 'lost' : null,
          text: [f.note, f.triggered_before ? 'triggered before' : ''].filter((x) => x).join('; ') || '-' })))))));
  }
  if (a.matched > a.listed) kids.push(el('p', { class: 'note', text: `${a.listed} of ${fmtCount(a.matched)} flows listed` }));
  return kids;
}

/* The trigger form on a flow (POST /api/v1/trigger, docs/api.md), on a recorder only
   (flowscope serve has no ring to reach back into: null).  It sends the flow with an
   optional reason and `for`, and shows the answer under it: flows matched, packets reached
   back in the ring, how far back, and whether the first packet had left the ring already;
   an error as the API says it.  #trigger-out's data-done counts the answers shown. */
async function flowTriggerButton(p) {
  if (!(await isRecorder())) return null;
  const flow = flowTriggerSpec(p);
  const reason = el('input', { type: 'text', id: 'trigger-reason', name: 'reason', maxlength: '200', autocomplete: 'off',
    'aria-label': 'Reason (optional)', placeholder: 'reason (optional): ids alert 2019401' });
  const dur = el('input', { type: 'text', id: 'trigger-for', name: 'for', autocomplete: 'off', spellcheck: 'false',
    'aria-label': 'For: also archive new matching flows this long (optional, e.g. 30s, 5m)', placeholder: 'for (optional): 30s, 5m' });
  const btn = el('button', { class: 'primary', type: 'submit', id: 'trigger-button', text: 'Trigger' });
  const out = el('div', { id: 'trigger-out', 'aria-live': 'polite' });
  let done = 0;
  const form = el('form', { class: 'filter trigger', id: 'trigger-form', onsubmit: async (ev) => {
    ev.preventDefault();
    btn.disabled = true;
    out.setAttribute('aria-busy', 'true');
    try {
      out.replaceChildren(...triggerAnswer(await apiPost('/api/v1/trigger', { flow, reason: reason.value.trim(), for: dur.value.trim() })));
    } catch (e) {
      out.replaceChildren(errorBox(e));
    }
    btn.disabled = false;
    out.setAttribute('aria-busy', 'false');
    out.dataset.done = String(++done);
  } }, reason, dur, btn);
  return el('section', { id: 'trigger', 'aria-labelledby': 'trigger-title' },
    el('h2', { id: 'trigger-title', text: 'Trigger: archive this flow from the ring' }),
    el('p', { class: 'note' }, 'This server is a recorder: a trigger archives the flow ',
      el('code', { text: flow }), ' (either direction) with the packets its ring still holds from before, and its later ones. ' +
      'They reach the archive, this page\'s packets and its downloads as the ring lets them go.'),
    form, out);
}

async function viewFlow(main, p) {
  const first = secToNs(p.get('first')), last = secToNs(p.get('last'));
  const filter = flowFilter(p);
  const range = { from: nsToSec(first), to: nsToSec(last + 1n) };
  main.append(el('h1', { text: `Flow ${p.get('proto')} ${p.get('a')} ⇄ ${p.get('b')}` }));
  const base = { filter, ...range };
  const dl = (fmt) => '/api/v1/query?' + new URLSearchParams({ ...base, format: fmt });
  const name = `flow-${p.get('proto')}-${p.get('a')}-${p.get('b')}`.replace(/[^A-Za-z0-9._-]+/g, '_');
  const remote = location.origin;
  const cmd = `flowscope query --remote ${remote} --from ${range.from} --to ${range.to} -w - ${shellQuote(filter)} | wireshark -k -i -`;
  main.append(el('dl', { class: 'kv' },
    el('dt', { text: 'Protocol' }), el('dd', { text: p.get('proto') }),
    el('dt', { text: 'A' }), el('dd', { class: 'mono', text: p.get('a') }),
    el('dt', { text: 'B' }), el('dd', { class: 'mono', text: p.get('b') }),
    el('dt', { text: 'VLAN' }), el('dd', { text: p.get('vlan_inner') ? `${p.get('vlan')}/${p.get('vlan_inner')}` : p.get('vlan') || '-' }),
    el('dt', { text: 'First packet' }), el('dd', { text: nsToText(first) + ' UTC' }),
    el('dt', { text: 'Last packet' }), el('dd', { text: nsToText(last) + ' UTC' }),
    el('dt', { text: 'Filter' }), el('dd', { class: 'mono', id: 'flow-filter', text: filter })));
  main.append(el('div', { class: 'actions' },
    el('a', { class: 'button primary', id: 'download-pcap', href: dl('pcap'), download: name + '.pcap', text: 'Download pcap' }),
    el('a', { class: 'button', id: 'download-pcapng', href: dl('pcapng'), download: name + '.pcapng', text: 'Download pcapng' }),
    el('a', { class: 'button', href: link('query', { ...range, filter }), text: 'Open in Query' })));
  const trigBox = el('div', {}); /* the trigger form, on a recorder: once the server's kind is known */
  main.append(trigBox);
  const trig = flowTriggerButton(p).then((t) => { if (t) trigBox.replaceWith(t); else trigBox.remove(); });
  main.append(el('h2', { text: 'Open in Wireshark' }), el('pre', { id: 'wireshark-cmd', text: cmd }),
    el('p', { class: 'note', text: 'Add --cert, --key and --cacert when the server asks for a client certificate (docs/cli.md).' }));
  main.append(el('h2', { text: 'First 100 packets' }));
  const box = el('div', { class: 'scroll', id: 'packets-out', 'aria-busy': 'true' });
  main.append(box);
  try {
    const { rows } = await apiLines('/api/v1/query', { ...base, format: 'json', limit_packets: 100 });
    const t0 = rows.length ? BigInt(rows[0].ts_ns) : 0n;
    box.append(el('table', { id: 'packets' },
      el('thead', {}, el('tr', {}, ['#', 'Time (UTC)', '+ms', 'Direction', 'Length', 'Captured', 'TCP flags'].map((h) => el('th', { scope: 'col', text: h })))),
      el('tbody', {}, rows.map((r, i) => el('tr', {},
        el('td', { class: 'num', text: String(i + 1) }), el('td', { text: r.time }),
        el('td', { class: 'num', text: (Number(BigInt(r.ts_ns) - t0) / 1e6).toFixed(3) }),
        el('td', { class: 'mono', text: `${r.src}${r.sport !== undefined ? ':' + r.sport : ''} → ${r.dst}${r.dport !== undefined ? ':' + r.dport : ''}` }),
        el('td', { class: 'num', text: String(r.len) }), el('td', { class: 'num', text: String(r.caplen) }),
        el('td', { class: 'mono', text: r.tcp_flags || '' }))))));
  } catch (e) {
    box.append(errorBox(e));
  }
  box.setAttribute('aria-busy', 'false');
  await trig;
}

/* ---- the query view --------------------------------------------------------------------- */

async function viewQuery(main, p) {
  const range = rangeParams(p), filter = p.get('filter') || '';
  main.append(el('h1', { text: 'Query' }));
  const input = el('input', { type: 'search', id: 'qfilter', value: filter, 'aria-label': 'Filter (tcpdump syntax)',
    placeholder: 'filter, tcpdump syntax (empty: every packet in the range)', spellcheck: 'false', autocomplete: 'off' });
  main.append(el('form', { class: 'filter', id: 'query-form', onsubmit: (ev) => {
    ev.preventDefault();
    location.hash = link('query', { ...Object.fromEntries(p), filter: input.value.trim() });
  } }, input, el('button', { class: 'primary', type: 'submit', text: 'Explain' })));
  const out = el('div', { id: 'query-out', 'aria-busy': 'true' });
  main.append(out);
  try {
    const x = await apiJson('/api/v1/explain', { ...range, filter });
    out.append(el('dl', { class: 'kv', id: 'explain' },
      el('dt', { text: 'Plan (index terms)' }), el('dd', { class: 'mono', text: x.plan }),
      el('dt', { text: 'Index used' }), el('dd', { text: x.indexed ? 'yes' : 'no: every frame in the range is read' }),
      el('dt', { text: 'Frames to read' }), el('dd', { id: 'explain-frames', text: `${fmtCount(x.frames_to_read)} of ${fmtCount(x.frames_total)}` }),
      el('dt', { text: 'Segments' }), el('dd', { text: fmtCount(x.segments) }),
      el('dt', { text: 'Compressed bytes to read' }), el('dd', { text: fmtBytes(x.compressed_bytes_to_read) })));
    const base = { ...range, filter };
    const dl = (fmt) => '/api/v1/query?' + new URLSearchParams(Object.entries({ ...base, format: fmt }).filter(([, v]) => v));
    out.append(el('div', { class: 'actions' },
      el('a', { class: 'button primary', id: 'query-pcap', href: dl('pcap'), download: 'flowscope-query.pcap', text: 'Download pcap' }),
      el('a', { class: 'button', id: 'query-pcapng', href: dl('pcapng'), download: 'flowscope-query.pcapng', text: 'Download pcapng' }),
      el('a', { class: 'button', href: link('flows', base), text: 'Flows for this filter' })));
    const times = (range.from ? ` --from ${range.from}` : '') + (range.to ? ` --to ${range.to}` : '');
    out.append(el('h2', { text: 'Open in Wireshark' }), el('pre', { id: 'query-wireshark-cmd',
      text: `flowscope query --remote ${location.origin}${times} -w -${filter ? ' ' + shellQuote(filter) : ''} | wireshark -k -i -` }));
  } catch (e) {
    out.append(errorBox(e));
  }
  out.setAttribute('aria-busy', 'false');
}

/* ---- live status ------------------------------------------------------------------------ */

/* Prometheus text -> [{name, labels: {}, value}] */
function parseMetrics(text) {
  const out = [];
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m || line.startsWith('#')) continue;
    const labels = {};
    for (const l of (m[2] || '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}
function metricSum(ms, name, pred) {
  return ms.filter((m) => m.name === name && (!pred || pred(m.labels))).reduce((s, m) => s + m.value, 0);
}
function metricHas(ms, name) { return ms.some((m) => m.name === name); }

let liveTimer = null;
const LIVE_KEEP = 100; /* samples on the live chart: five minutes */

/* The live chart: packets per second of the last samples, a mark where packets were lost
   (drops, the ring) or not stored (the disk full) since the sample before. */
function liveChart(hist) {
  const c = svg('svg', { class: 'chart live', viewBox: `0 0 ${W} 120`, preserveAspectRatio: 'none', id: 'live-chart',
    role: 'img', 'aria-label': 'Packets per second over the last minutes, with marks where packets were lost' });
  const max = Math.max(1, ...hist.map((h) => h.pps || 0)), bw = W / LIVE_KEEP;
  hist.forEach((h, i) => {
    const x = (LIVE_KEEP - hist.length + i) * bw, hp = ((h.pps || 0) / max) * 110;
    if (hp > 0) c.append(svg('rect', { class: 'bar', x, y: 110 - hp, width: bw * 0.8, height: hp }));
    const p = hist[i - 1];
    if (p && h.lost > p.lost) c.append(svg('line', { class: 'mark', x1: x + bw / 2, x2: x + bw / 2, y1: 0, y2: 110 }));
    if (p && h.unstored > p.unstored) c.append(svg('line', { class: 'mark disk', x1: x + bw / 2, x2: x + bw / 2, y1: 0, y2: 110 }));
  });
  return c;
}

async function viewLive(main) {
  main.append(el('h1', { text: 'Live status' }));
  const out = el('div', { id: 'live-out', 'aria-live': 'polite' });
  main.append(out);
  let prev = null;
  const hist = [];
  const tick = async () => {
    let ms, info;
    try {
      const [m, i] = await Promise.all([api('/metrics').then((x) => x.text), apiJson('/api/v1/info')]);
      ms = parseMetrics(m); info = i;
    } catch (e) {
      out.replaceChildren(errorBox(e));
      return;
    }
    const now = performance.now(), recorder = metricHas(ms, 'flowscope_qq_fill_ratio');
    const pk = metricSum(ms, 'flowscope_ingest_packets_total'), by = metricSum(ms, 'flowscope_ingest_wire_bytes_total');
    const dt = prev ? (now - prev.t) / 1000 : 0;
    const rate = (v, pv) => (prev && dt > 0 ? (v - pv) / dt : null);
    const pr = rate(pk, prev && prev.pk), br = rate(by, prev && prev.by);
    prev = { t: now, pk, by };
    const stat = (id, v, label) => el('div', { class: 'stat' }, el('b', { id, text: v }), el('span', { text: label }));
    const kids = [el('p', { class: 'note', id: 'live-kind', text: recorder ? `Recording: refreshed every ${LIVE_MS / 1000} s.` :
      'This server is flowscope serve, not a recorder: the archive as it is, no live counters (flowscope record --listen has them).' })];
    if (recorder) {
      const drops = {};
      for (const m of ms.filter((x) => x.name === 'flowscope_ingest_dropped_packets_total')) drops[m.labels.reason] = (drops[m.labels.reason] || 0) + m.value;
      const qqLost = metricSum(ms, 'flowscope_qq_overwritten_packets_total') + metricSum(ms, 'flowscope_qq_dropped_busy_packets_total');
      const unstored = metricSum(ms, 'flowscope_archive_writer_unstored_packets_total');
      kids.push(el('div', { class: 'stats' },
        stat('live-pps', pr === null ? '…' : fmtCount(Math.round(pr)) + '/s', 'packets'),
        stat('live-bps', br === null ? '…' : fmtBits(br), 'on the wire'),
        stat('live-packets', fmtCount(pk), 'packets captured'),
        stat('live-fill', (metricSum(ms, 'flowscope_qq_fill_ratio') * 100).toFixed(1) + ' %', 'QQ fill'),
        stat('live-window', fmtDuration(metricSum(ms, 'flowscope_qq_window_seconds')), 'QQ window'),
        stat('live-qqlost', fmtCount(qqLost), 'lost in QQ'),
        stat('live-unstored', fmtCount(unstored), 'not stored (disk)')));
      hist.push({ pps: pr, lost: Object.values(drops).reduce((a, b) => a + b, 0) + qqLost, unstored });
      if (hist.length > LIVE_KEEP) hist.shift();
      kids.push(liveChart(hist), el('div', { class: 'legend' },
        el('span', {}, el('i', { class: 'sw p' }), 'packets per second'),
        el('span', {}, el('i', { class: 'sw m' }), 'packets lost (drops, the ring)'),
        el('span', {}, el('i', { class: 'sw d' }), 'packets not stored (disk full)')));
      kids.push(el('h2', { text: 'Drops by reason' }), el('table', { id: 'drops' }, el('tbody', {},
        Object.entries(drops).map(([r, v]) => el('tr', {}, el('td', { text: r }), el('td', { class: 'num', text: fmtCount(v) }))))));
    }
    const free = metricSum(ms, 'flowscope_archive_disk_free_bytes');
    kids.push(el('h2', { text: 'Archive' }), el('div', { class: 'stats' },
      stat('live-stored', fmtBytes(info.file_bytes + info.index_bytes), 'stored (segments and index)'),
      stat('live-free', metricHas(ms, 'flowscope_archive_disk_free_bytes') ? fmtBytes(free) : '-', 'disk free'),
      stat('live-oldest', info.packets ? nsToText(BigInt(info.first_ns)) + ' UTC' : '-', 'oldest packet kept'),
      stat('live-newest', info.packets ? nsToText(BigInt(info.last_ns)) + ' UTC' : '-', 'newest packet'),
      stat('live-archive-packets', fmtCount(info.packets), 'packets in the archive')));
    out.replaceChildren(...kids);
  };
  await tick();
  liveTimer = setInterval(tick, LIVE_MS);
}

/* ---- the router ------------------------------------------------------------------------- */

const VIEWS = { timeline: viewTimeline, flows: viewFlows, flow: viewFlow, query: viewQuery, live: viewLive };
let rendering = 0;

async function render() {
  const { view, p } = readState();
  const mine = ++rendering;
  delete document.body.dataset.ready;
  if (liveTimer) { clearInterval(liveTimer); liveTimer = null; }
  showRange(p);
  for (const a of document.querySelectorAll('nav a')) {
    const v = a.dataset.view;
    a.href = link(v, rangeParams(p));
    if (v === view || (view === 'flow' && v === 'flows')) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const main = el('main', { id: 'main', tabindex: '-1', 'data-view': view, 'aria-busy': 'true' });
  document.getElementById('main').replaceWith(main);
  document.title = `flowscope: ${view}`;
  try {
    await (VIEWS[view] || viewTimeline)(main, p);
  } catch (e) {
    if (mine === rendering) main.append(errorBox(e));
  }
  main.setAttribute('aria-busy', 'false');
  if (mine === rendering) document.body.dataset.ready = view; /* for tests and scripts: the view is drawn */
}

document.getElementById('range-clear').addEventListener('click', () => {
  const { view, p } = readState();
  p.delete('from'); p.delete('to'); p.delete('page');
  go(view, Object.fromEntries(p));
});
document.addEventListener('keydown', (ev) => {
  if (ev.target.closest('input, textarea') || ev.ctrlKey || ev.metaKey || ev.altKey) return;
  const keys = { t: 'timeline', f: 'flows', q: 'query', l: 'live' };
  if (keys[ev.key]) { go(keys[ev.key], rangeParams(readState().p)); ev.preventDefault(); }
  if (ev.key === '/') { const i = document.querySelector('input[type="search"]'); if (i) { i.focus(); ev.preventDefault(); } }
});
window.addEventListener('hashchange', render);
api('/api/v1/info').then(({ text }) => {
  const i = JSON.parse(text);
  document.getElementById('server').textContent = `${i.archive}: ${fmtCount(i.packets)} packets, ${fmtCount(i.segments)} segments`;
}).catch(() => {});
render();
