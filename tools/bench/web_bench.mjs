// web_bench.sh's browser part: Debian's chromium (puppeteer-core) opens each view RUNS times
// with an empty cache and prints, per view, the median milliseconds from navigation start to
// the view drawn (the app's body[data-ready] mark: its data fetched and its DOM built: what a
// responder can use) and to DOMContentLoaded (Navigation Timing).
//   node web_bench.mjs URL RUNS
import puppeteer from 'puppeteer-core';

const [base, runsArg] = process.argv.slice(2);
const runs = Number(runsArg || 5);
const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run'],
});
const median = (a) => a.slice().sort((x, y) => x - y)[Math.floor(a.length / 2)];
for (const view of ['timeline', 'flows', 'flows?sort=bytes&page=100']) {
  const ready = [], dcl = [];
  for (let i = 0; i < runs; i++) {
    const page = await browser.newPage();
    await page.setCacheEnabled(false);
    await page.setViewport({ width: 1280, height: 800 });
    await page.goto(`${base}/#/${view}`, { waitUntil: 'domcontentloaded' });
    await page.waitForSelector(`body[data-ready="${view.replace(/\?.*/, '')}"]`, { timeout: 120000 });
    const t = await page.evaluate(() => {
      const n = performance.getEntriesByType('navigation')[0];
      return { ready: performance.now(), dcl: n.domContentLoadedEventEnd };
    });
    ready.push(t.ready);
    dcl.push(t.dcl);
    await page.close();
  }
  console.log(`${view.padEnd(28)} drawn ${median(ready).toFixed(0).padStart(6)} ms   DOMContentLoaded ${median(dcl).toFixed(0).padStart(5)} ms   (median of ${runs})`);
}
await browser.close();
