// Graph layouts for the dashboard's drawings, pure (no DOM) and unit-tested: a task graph's
// dependency columns and points on a circle for the memory graph.

/**
 * Steps in dependency columns: column 0 holds the steps that depend on nothing, column n the
 * steps whose longest chain of dependencies is n long. Unknown dependencies are ignored and a
 * cycle (which a checked plan cannot have) is cut, so any input gives columns. Order within a
 * column follows the plan.
 */
export function columns(steps) {
  const byId = new Map((steps || []).map((s) => [s.id, s]));
  const depth = new Map();
  const visiting = new Set();
  const level = (id) => {
    if (depth.has(id)) return depth.get(id);
    if (visiting.has(id)) return 0;
    visiting.add(id);
    const deps = (byId.get(id).depends_on || []).filter((d) => byId.has(d) && d !== id);
    const d = deps.length ? 1 + Math.max(...deps.map(level)) : 0;
    visiting.delete(id);
    depth.set(id, d);
    return d;
  };
  const cols = [];
  for (const s of byId.values()) {
    const d = level(s.id);
    (cols[d] ||= []).push(s.id);
  }
  return cols.filter(Boolean);
}

/** `n` points evenly on a circle around (cx, cy), the first at the top, rounded to 0.1. */
export function circle(n, cx, cy, r) {
  const round = (v) => Math.round(v * 10) / 10;
  return Array.from({ length: n }, (_, i) => {
    const a = (2 * Math.PI * i) / Math.max(n, 1) - Math.PI / 2;
    return n === 1 ? { x: cx, y: cy } : { x: round(cx + r * Math.cos(a)), y: round(cy + r * Math.sin(a)) };
  });
}
