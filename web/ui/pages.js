// The page registry: one entry per page, each page one module under pages/ (loaded on first
// visit). To add a page, write its module (default export `{ mount(root, ctx) }`) and add a
// line here; the router, the navigation and the shortcut help pick it up.
//
// `path` is matched on whole segments (`/chat` also matches `/chat/<id>`); `keys` is its
// go-to shortcut; `minRole` hides it from roles that cannot use its API; `public` pages work
// without a session (and while the vault is sealed).

export const pages = [
  { id: 'dashboard', path: '/', title: 'Dashboard', nav: true, keys: 'g d', load: () => import('./pages/dashboard.js') },
  { id: 'chat', path: '/chat', title: 'Chat', nav: true, keys: 'g c', load: () => import('./pages/chat.js') },
  { id: 'tasks', path: '/tasks', title: 'Tasks', nav: true, keys: 'g t', load: () => import('./pages/tasks.js') },
  { id: 'workflows', path: '/workflows', title: 'Workflows', nav: true, keys: 'g w', load: () => import('./pages/workflows.js') },
  { id: 'agents', path: '/agents', title: 'Agents', nav: true, keys: 'g n', load: () => import('./pages/agents.js') },
  { id: 'memory', path: '/memory', title: 'Memory', nav: true, keys: 'g m', load: () => import('./pages/memory.js') },
  { id: 'prompts', path: '/prompts', title: 'Prompts', nav: true, keys: 'g p', load: () => import('./pages/prompts.js') },
  { id: 'artifacts', path: '/artifacts', title: 'Artifacts', nav: true, keys: 'g f', load: () => import('./pages/artifacts.js') },
  { id: 'vault', path: '/vault', title: 'Vault', nav: true, keys: 'g v', load: () => import('./pages/vault.js') },
  { id: 'audit', path: '/audit', title: 'Audit', nav: true, keys: 'g a', minRole: 'admin', load: () => import('./pages/audit.js') },
  { id: 'settings', path: '/settings', title: 'Settings', nav: true, keys: 'g s', load: () => import('./pages/settings.js') },
  { id: 'login', path: '/login', title: 'Log in', public: true, load: () => import('./pages/login.js') },
  { id: 'unlock', path: '/unlock', title: 'Unlock the vault', public: true, load: () => import('./pages/unlock.js') },
];

const RANK = { viewer: 1, member: 2, admin: 3, owner: 4 };

/** Whether `role` may see a page. */
export function allowed(page, role) {
  return !page.minRole || (RANK[role] || 0) >= RANK[page.minRole];
}

/** Role comparisons for pages that show or hide actions. */
export function atLeast(role, min) {
  return (RANK[role] || 0) >= RANK[min];
}
