// Audit entries and usage rows name users by id (`user:<uuid>`). For roles that may list
// users (admins), this maps those ids to usernames; everyone else sees the ids.

import { get } from './api.js';
import { h, short } from './dom.js';

let cached = null;

/** `user:<id>` → `user <username>`, loaded once per page view (admins only). */
export async function userNames(role) {
  if (role !== 'owner' && role !== 'admin') return new Map();
  if (!cached) {
    cached = get('/users')
      .then((users) => new Map(users.map((u) => [`user:${u.id}`, `user ${u.username}`])))
      .catch(() => new Map())
      .finally(() => setTimeout(() => { cached = null; }, 30_000));
  }
  return cached;
}

/** A principal as text: its username when known (the id stays in the title). */
export function principal(names, text) {
  return names.has(text) ? h('span', { title: text }, names.get(text)) : h('span', { class: 'mono small', title: text }, short(text, 24));
}
