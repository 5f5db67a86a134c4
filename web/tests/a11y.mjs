// Accessibility checks run on every page the browser test visits: one h1; every visible form
// control has a label (or aria-label); every button and link has a name; text and controls
// meet WCAG AA contrast (4.5:1) against their actual background; keyboard focus is visible.

import assert from 'node:assert/strict';

export async function checkA11y(page, where) {
  const report = await page.evaluate(() => {
    const visible = (el) => {
      const r = el.getBoundingClientRect();
      const s = getComputedStyle(el);
      return r.width > 0 && r.height > 0 && s.visibility !== 'hidden' && s.display !== 'none';
    };
    const named = (el) => Boolean(
      (el.labels && el.labels.length) || el.getAttribute('aria-label')?.trim()
      || el.getAttribute('aria-labelledby') || el.getAttribute('title')?.trim());
    const problems = [];
    const h1 = [...document.querySelectorAll('h1')];
    if (h1.length !== 1) problems.push(`expected one h1, found ${h1.length}`);
    for (const el of document.querySelectorAll('input:not([type="hidden"]), select, textarea')) {
      if (visible(el) && !named(el)) problems.push(`unlabelled ${el.tagName.toLowerCase()} ${el.outerHTML.slice(0, 120)}`);
    }
    for (const el of document.querySelectorAll('button, a[href]')) {
      if (visible(el) && !(el.textContent.trim() || named(el))) problems.push(`nameless ${el.outerHTML.slice(0, 120)}`);
    }
    const rgb = (c) => (c.match(/[\d.]+/g) || []).map(Number);
    const lum = ([r, g, b]) => {
      const f = (v) => { const s = v / 255; return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4; };
      return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
    };
    const background = (el) => {
      for (let e = el; e; e = e.parentElement) {
        const c = rgb(getComputedStyle(e).backgroundColor);
        if (c.length >= 3 && (c.length === 3 || c[3] > 0.5)) return c.slice(0, 3);
      }
      return rgb(getComputedStyle(document.documentElement).backgroundColor).slice(0, 3);
    };
    const ratio = (a, b) => { const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p); return (x + 0.05) / (y + 0.05); };
    const sample = document.querySelectorAll('main h1, main h2, main p, main label, main td, main th, main .muted, main .btn, main .badge, main a, nav a, .topbar .brand, .msg .text, .msg .who, .alert');
    let checked = 0;
    for (const el of sample) {
      if (!visible(el) || !el.textContent.trim() || el.closest('[disabled]') || el.disabled) continue;
      const fg = rgb(getComputedStyle(el).color).slice(0, 3);
      const r = ratio(fg, background(el));
      checked += 1;
      if (r < 4.5) problems.push(`contrast ${r.toFixed(2)}:1 for ${el.tagName.toLowerCase()}.${el.className} "${el.textContent.trim().slice(0, 30)}"`);
    }
    return { problems, checked };
  });
  assert.deepEqual(report.problems, [], `accessibility on ${where}:\n${report.problems.join('\n')}`);
  assert.ok(report.checked > 0, `contrast was checked on ${where}`);
}

/** Presses Tab and checks that the focused element shows a visible focus ring. */
export async function checkFocusRing(page, where) {
  await page.keyboard.press('Tab');
  const ring = await page.evaluate(() => {
    const el = document.activeElement;
    const s = getComputedStyle(el);
    return { tag: el.tagName, width: parseFloat(s.outlineWidth), style: s.outlineStyle };
  });
  assert.ok(ring.style !== 'none' && ring.width >= 2, `visible focus on ${where}: ${JSON.stringify(ring)}`);
}
