// The agent lifecycle as the dashboard offers it (mirrors kai-core `lifecycle`): which actions
// are legal from a state. Built-in agents can be neither modified nor terminated. Pure; unit-tested.

const NEXT = {
  created: ['initialize'],
  initialized: ['activate'],
  active: ['suspend', 'modify'],
  suspended: ['resume'],
  modified: ['apply'],
  terminated: [],
};

/** The actions an agent in `state` accepts, in the order the page shows them. */
export function legalActions(state, builtin) {
  const out = (NEXT[state] || []).filter((a) => !(builtin && a === 'modify'));
  if (!builtin && state !== 'terminated' && NEXT[state]) out.push('terminate');
  return out;
}

/** The definition fields of a manifest entry, to edit and send back with `modify`. */
export function definitionOf(m) {
  const def = { name: m.id, version: m.version, type: m.type };
  for (const k of ['description', 'instructions', 'persona']) if (m[k]) def[k] = m[k];
  for (const k of ['capabilities', 'triggers', 'hooks']) if (m[k]?.length) def[k] = m[k];
  for (const k of ['permissions', 'metadata']) if (m[k] && Object.keys(m[k]).length) def[k] = m[k];
  return def;
}

const plainKey = (k) => (/^[A-Za-z_][\w-]*$/.test(k) ? k : JSON.stringify(k));
const isObj = (x) => x !== null && typeof x === 'object' && !Array.isArray(x);
const block = (x) => (isObj(x) && Object.keys(x).length > 0) || (Array.isArray(x) && x.some((i) => isObj(i) || Array.isArray(i)));

/** A JSON value as block YAML (strings double-quoted, which YAML reads as JSON strings). */
export function toYaml(value, indent = '') {
  if (Array.isArray(value)) {
    return value.map((x) => (block(x)
      ? `${indent}- ${toYaml(x, `${indent}  `).trimStart()}`
      : `${indent}- ${JSON.stringify(x)}`)).join('\n');
  }
  if (isObj(value)) {
    return Object.entries(value).map(([k, x]) => (block(x)
      ? `${indent}${plainKey(k)}:\n${toYaml(x, `${indent}  `)}`
      : `${indent}${plainKey(k)}: ${JSON.stringify(x)}`)).join('\n');
  }
  return `${indent}${JSON.stringify(value)}`;
}
