// The web view in a real browser (tests/e2e/web.sh runs it): Debian's chromium, headless,
// driven by puppeteer-core (nothing downloaded).  Usage:
//   node web.mjs archive URL SHOTS EXPECT_DIR OUT.json   (flowscope serve)
//   node web.mjs live URL SHOTS OUT.json                 (flowscope record --listen)
//   node web.mjs big URL SHOTS OUT.json                  (serve, a large archive)
//   node web.mjs trigger URL SHOTS OUT.json LATE_URL LATE_HASH HASH...
//                                                        (record --listen --capture triggered)
// EXPECT_DIR holds flows.N.filter and flows.N.ndjson (`flowscope flows --json` for that
// filter) and bad.filter (a filter libpcap refuses).  Every check this script can make alone
// (the table against the CLI's lines, no console error, no failed request) is made here and
// printed as "FAIL: ..." lines; what needs the shell's oracles (tcpdump, info) goes into
// OUT.json: the timeline's total, the downloaded pcap (base64) and its flow's endpoints.
import fs from 'node:fs';
import path from 'node:path';
import puppeteer from 'puppeteer-core';

const [mode, base, shots, ...rest] = process.argv.slice(2);
const fails = [];
let checks = 0;
const fail = (m) => { fails.push(m); console.log('FAIL: ' + m); };
const pass = () => { checks++; };
const out = {};

fs.mkdirSync(shots, { recursive: true });
const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run'],
});
const page = await browser.newPage();
await page.setViewport({ width: 1280, height: 800 });
let errors = [];
let allow400 = false;
page.on('console', (m) => {
  if (m.type() !== 'error') return;
  if (allow400 && /status of 400/.test(m.text())) return; // the invalid filter's answer
  errors.push('console: ' + m.text());
});
page.on('pageerror', (e) => errors.push('page error: ' + e.message));
page.on('requestfailed', (r) => errors.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));
page.on('response', (r) => {
  if (r.status() >= 400 && !(allow400 && r.status() === 400)) errors.push(`HTTP ${r.status()}: ${r.url()}`);
});

// show(hash): the view drawn (body[data-ready] is the app's own "done" mark), within 30 s.
async function show(hash, view) {
  await page.evaluate(() => delete document.body.dataset.ready).catch(() => {});
  if (page.url().startsWith(base)) await page.evaluate((h) => { location.hash = h; }, hash);
  else await page.goto(base + '/' + hash, { waitUntil: 'load' });
  await page.waitForSelector(`body[data-ready="${view}"]`, { timeout: 30000 });
}
function clean(what) {
  if (errors.length) fail(`${what}: ${errors.join('; ')}`);
  else pass();
  errors = [];
}
async function shot(name) {
  await page.screenshot({ path: path.join(shots, name + '.png'), fullPage: true });
}
const text = (sel) => page.$eval(sel, (e) => e.textContent);

async function archiveMode(expectDir, outFile) {
  // the timeline, its total, and a zoom by dragging (the range goes into the URL)
  await show('#/timeline', 'timeline');
  clean('timeline');
  out.timeline_packets = (await text('#tl-packets')).replace(/,/g, '');
  out.marks = await page.$$eval('#chart line.mark', (l) => l.length);
  await shot('timeline');
  const box = await (await page.$('#chart')).boundingBox();
  await page.mouse.move(box.x + box.width * 0.2, box.y + box.height / 2);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width * 0.6, box.y + box.height / 2, { steps: 5 });
  await page.evaluate(() => delete document.body.dataset.ready);
  await page.mouse.up();
  await page.waitForSelector('body[data-ready="timeline"]', { timeout: 30000 });
  const zoomed = new URL(page.url()).hash;
  if (/from=\d+\.\d{9}/.test(zoomed) && /to=\d+\.\d{9}/.test(zoomed)) pass();
  else fail(`dragging over the timeline did not put a range into the URL: ${zoomed}`);
  const navFlows = await page.$eval('nav a[data-view="flows"]', (a) => a.getAttribute('href'));
  if (navFlows.includes('from=') && navFlows.includes('to=')) pass();
  else fail(`the range does not carry over to the flows view's link: ${navFlows}`);
  out.zoomed_packets = (await text('#tl-packets')).replace(/,/g, '');
  clean('timeline zoomed');
  await shot('timeline-zoomed');

  // the flows table for each filter equals `flowscope flows --json`'s lines
  for (let i = 0; fs.existsSync(path.join(expectDir, `flows.${i}.filter`)); i++) {
    const filter = fs.readFileSync(path.join(expectDir, `flows.${i}.filter`), 'utf8').trim();
    const lines = fs.readFileSync(path.join(expectDir, `flows.${i}.ndjson`), 'utf8').split('\n').filter((l) => l);
    const want = lines.map((l) => {
      const f = JSON.parse(l), dur = /"duration":([0-9.]+)/.exec(l)[1];
      const vlan = f.vlan_inner ? `${f.vlan}/${f.vlan_inner}` : f.vlan ? String(f.vlan) : '-';
      return [f.first, dur, f.proto, f.a, f.b, vlan, f.packets_ab, f.packets_ba, f.bytes_ab, f.bytes_ba, f.tcp_flags, f.trigger].map(String);
    });
    const got = [];
    // the first filter 10 rows a page: the pages, walked by their Next links, add up
    const extraFile = path.join(expectDir, `flows.${i}.extra`); // more of the URL: &triggered=true
    const extra = fs.existsSync(extraFile) ? fs.readFileSync(extraFile, 'utf8').trim() : '';
    await show('#/flows?filter=' + encodeURIComponent(filter) + (i === 0 ? '&per=10' : '') + extra, 'flows');
    for (;;) { // every page
      got.push(...(await page.$$eval('#flows tbody tr', (rows) => rows.map((r) => [...r.cells].map((c) => c.textContent)))));
      const next = await page.$eval('#next', (a) => a.getAttribute('href'));
      if (!next) break;
      await show(next, 'flows');
    }
    clean(`flows '${filter}'`);
    const total = Number((await text('#flows-total')).replace(/,/g, ''));
    if (JSON.stringify(got) === JSON.stringify(want) && total === want.length) pass();
    else fail(`flows '${filter}': the table (${got.length} rows, total ${total}) differs from flows --json (${want.length}): first rows ${JSON.stringify(got.slice(0, 2))} vs ${JSON.stringify(want.slice(0, 2))}`);
    if (i === 1) await shot('flows');
  }

  // sort by bytes, by keyboard: the header's button
  await show('#/flows', 'flows');
  await page.evaluate(() => delete document.body.dataset.ready);
  await page.focus('th button[data-sort="bytes"]');
  await page.keyboard.press('Enter');
  await page.waitForSelector('body[data-ready="flows"]', { timeout: 30000 });
  const bytes = await page.$$eval('#flows tbody tr', (rows) => rows.map((r) => Number(r.cells[8].textContent) + Number(r.cells[9].textContent)));
  if (page.url().includes('sort=bytes') && bytes.every((b, k) => k === 0 || bytes[k - 1] >= b)) pass();
  else fail(`sorting by bytes: ${page.url()} ${bytes.slice(0, 5)}`);
  clean('flows sorted');

  // at a phone's width: no horizontal overflow of the page (the table scrolls in its box)
  await page.setViewport({ width: 390, height: 844, isMobile: true });
  await show('#/flows?filter=tcp', 'flows');
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  if (overflow <= 0) pass(); else fail(`at 390 px the page is ${overflow} px too wide`);
  await shot('flows-phone');
  await page.setViewport({ width: 1280, height: 800 });
  clean('flows at phone width');

  // an invalid filter: libpcap's message, inline, no stack trace
  const bad = fs.readFileSync(path.join(expectDir, 'bad.filter'), 'utf8').trim();
  allow400 = true;
  for (const [view, sel] of [['flows', '#flows-out .error'], ['query', '#query-out .error']]) {
    await show(`#/${view}?filter=` + encodeURIComponent(bad), view);
    out[`bad_${view}`] = await text(sel).catch(() => '');
    if (view === 'query') await shot('query-error');
  }
  allow400 = false;
  clean('the invalid filter');

  // a flow: keyboard from the table (Tab to a row, Enter), its packets, its pcap
  await show('#/flows?filter=' + encodeURIComponent('tcp port 80') + '&sort=packets', 'flows');
  const row = await page.$eval('#flows tbody tr', (r) => [...r.cells].map((c) => c.textContent));
  out.flow = { proto: row[2], a: row[3], b: row[4], packets: Number(row[6]) + Number(row[7]) };
  await page.evaluate(() => delete document.body.dataset.ready);
  await page.focus('#flows tbody tr');
  await page.keyboard.press('Enter');
  await page.waitForSelector('body[data-ready="flow"]', { timeout: 30000 });
  clean('the flow');
  await shot('flow');
  // flowscope serve has no trigger API: no trigger form (the server's kind is known at ready)
  if (await page.$('#trigger-form, #trigger-button')) fail('flowscope serve: the flow view shows a trigger button');
  else pass();
  const npk = await page.$$eval('#packets tbody tr', (r) => r.length);
  if (npk === Math.min(100, out.flow.packets)) pass();
  else fail(`the flow's packets table has ${npk} rows, expected ${Math.min(100, out.flow.packets)}`);
  out.wireshark = await text('#wireshark-cmd');
  const href = await page.$eval('#download-pcap', (a) => a.href);
  out.pcap_b64 = await page.evaluate(async (u) => {
    const b = new Uint8Array(await (await fetch(u)).arrayBuffer());
    let s = '';
    for (let i = 0; i < b.length; i += 0x8000) s += String.fromCharCode(...b.subarray(i, i + 0x8000));
    return btoa(s);
  }, href);
  clean('the flow\'s download');

  // the query view: explain and the download links
  await show('#/query?filter=udp', 'query');
  out.explain = await text('#explain-frames');
  clean('query');
  await shot('query');
  // live, on a server that is not a recorder: says so, archive figures only
  await show('#/live', 'live');
  out.live_kind = await text('#live-kind');
  clean('live (serve)');
  fs.writeFileSync(outFile, JSON.stringify(out));
}

async function liveMode(outFile) {
  await show('#/live', 'live');
  // two refreshes: the rates need two samples
  await page.waitForFunction(() => /\d/.test(document.querySelector('#live-pps')?.textContent || ''), { timeout: 20000 });
  out.live_kind = await text('#live-kind');
  out.live_fill = await text('#live-fill');
  out.live_pps = await text('#live-pps');
  out.live_drops = await page.$$eval('#drops tr', (r) => r.length);
  out.live_bars = await page.$$eval('#live-chart rect.bar', (r) => r.length);
  clean('live (recorder)');
  await shot('live');
  fs.writeFileSync(outFile, JSON.stringify(out));
}

// A large archive: the timeline and the first page of flows load (no error) and page; the
// milliseconds from navigation to the view drawn go into OUT.json.
async function bigMode(outFile) {
  for (const view of ['timeline', 'flows']) {
    const t0 = Date.now();
    await show('#/' + view, view);
    out[`${view}_ms`] = Date.now() - t0;
    clean(`${view} (large archive)`);
  }
  out.total = Number((await text('#flows-total')).replace(/,/g, ''));
  out.rows = await page.$$eval('#flows tbody tr', (r) => r.length);
  const t0 = Date.now();
  await show(await page.$eval('#next', (a) => a.getAttribute('href')), 'flows');
  out.next_ms = Date.now() - t0;
  out.page_text = await text('#page-text');
  clean('flows page 2 (large archive)');
  await shot('flows-large');
  fs.writeFileSync(outFile, JSON.stringify(out));
}

// A trigger from a flow's view (HASH: #/flow?... of a flow the recorder's ring holds): the
// keyboard first (Enter in the form with a bad `for`: the API's error, inline), then a reason
// and the button, clicked (or, with keys, Enter in the reason); the answer shown must be the
// API's (the POST's own response, as the page got it), which goes into OUT.json with the flow
// the page sent, for the shell (tcpdump: the flow's packets; afterwards the archive).
async function triggerOne(url, hash, reason, shotName, keys) {
  await page.goto(url + '/' + hash, { waitUntil: 'load' });
  await page.waitForSelector('body[data-ready="flow"]', { timeout: 30000 });
  clean(`the flow view of a recorder (${shotName})`);
  if (!(await page.$('#trigger-form #trigger-button'))) {
    fail(`${shotName}: no trigger button on a recorder's flow view`);
    return null;
  }
  pass();
  // the keyboard: the form is reached and submitted from its field; a bad duration is refused
  allow400 = true;
  await page.focus('#trigger-for');
  await page.keyboard.type('soon');
  await page.keyboard.press('Enter');
  await page.waitForSelector('#trigger-out[data-done="1"]', { timeout: 30000 });
  const err = await text('#trigger-out .error').catch(() => '');
  if (err === "for 'soon': expected a duration, e.g. 30s, 5m (HTTP 400)") pass();
  else fail(`${shotName}: a bad duration shows '${err}', not the API's error`);
  allow400 = false;
  clean(`${shotName}: the refused trigger`);
  await page.$eval('#trigger-for', (i) => { i.value = ''; });
  await page.type('#trigger-reason', reason);
  const answer = page.waitForResponse((r) => r.url().endsWith('/api/v1/trigger') && r.request().method() === 'POST', { timeout: 30000 });
  if (keys) {
    await page.focus('#trigger-reason');
    await page.keyboard.press('Enter');
  } else {
    await page.click('#trigger-button');
  }
  const r = await answer;
  const raw = await r.text();
  await page.waitForSelector('#trigger-out[data-done="2"]', { timeout: 30000 });
  clean(`${shotName}: the trigger`);
  const sent = Object.fromEntries(new URLSearchParams(r.request().postData() || ''));
  const a = JSON.parse(raw);
  // the numbers as the API wrote them (seconds with three digits: compared as text)
  const rawNum = (k) => [...raw.matchAll(new RegExp(`"${k}": ([0-9.]+)`, 'g'))].map((m) => m[1]);
  const shown = {
    matched: await text('#trigger-matched'), packets: await text('#trigger-packets'),
    lost: await text('#trigger-lost'), window: await text('#trigger-window'),
    rows: await page.$$eval('#trigger-flows tbody tr', (rows) => rows.map((t) => [...t.cells].map((c) => c.textContent))),
  };
  const firstShown = shown.rows.map((row) => row[3]); // the first packet's time: the shell checks it
  for (const row of shown.rows) row[3] = null;
  const want = {
    matched: a.matched.toLocaleString('en-US'), packets: a.packets.toLocaleString('en-US'),
    lost: a.first_packet_lost.toLocaleString('en-US'), window: rawNum('ring_window_s')[0] + ' s',
    rows: a.flows.map((f, i) => [f.flow, f.community_id || '-', f.packets.toLocaleString('en-US'), null,
      rawNum('seconds_back')[i] + ' s', [f.note, f.triggered_before ? 'triggered before' : ''].filter((x) => x).join('; ') || '-']),
  };
  if (JSON.stringify(shown) === JSON.stringify(want)) pass();
  else fail(`${shotName}: the answer shown ${JSON.stringify(shown)} is not the API's ${raw.trim()}`);
  await shot(shotName);
  return { raw, sent, first_shown: firstShown };
}

// Each HASH triggered on URL (the first by a click: flow-trigger.png; the others from the
// keyboard), then LATE_HASH on LATE_URL, a recorder whose ring lost the flow's first packet:
// its answer shows the API's "first packet lost: ring window was N s" (flow-trigger-lost.png).
async function triggerMode(outFile, lateUrl, lateHash, ...hashes) {
  out.flows = [];
  for (const [i, h] of hashes.entries()) {
    out.flows.push(await triggerOne(base, h, `web test ${i}`, i ? `flow-trigger-${i}` : 'flow-trigger', i > 0));
  }
  out.late = await triggerOne(lateUrl, lateHash, 'too late', 'flow-trigger-lost', false);
  fs.writeFileSync(outFile, JSON.stringify(out));
}

try {
  if (mode === 'archive') await archiveMode(rest[0], rest[1]);
  else if (mode === 'big') await bigMode(rest[0]);
  else if (mode === 'trigger') await triggerMode(...rest);
  else await liveMode(rest[0]);
} catch (e) {
  fail(`${mode}: ${e.stack || e}`);
  await shot(`${mode}-failure`).catch(() => {});
} finally {
  await browser.close();
}
console.log(`web.mjs: ${checks} checks passed, ${fails.length} failed`);
process.exit(fails.length ? 1 : 0);
