// Log in with a username and password (`POST /auth/login`). Public page.

import { h, field } from '../lib/dom.js';
import { session } from '../lib/session.js';

export default {
  mount(root) {
    const user = h('input', { type: 'text', name: 'username', autocomplete: 'username', required: true, autocapitalize: 'none', spellcheck: 'false', maxlength: 64 });
    const pass = h('input', { type: 'password', name: 'password', autocomplete: 'current-password', required: true, maxlength: 1024 });
    const error = h('div', { 'aria-live': 'assertive' });
    const submit = h('button', { type: 'submit', class: 'btn primary' }, 'Log in');
    const form = h('form', { class: 'card', on: { submit: async (e) => {
      e.preventDefault();
      error.replaceChildren();
      submit.disabled = true;
      try {
        await session.login(user.value.trim(), pass.value);
      } catch (err) {
        const text = err.status === 429 ? 'Too many attempts; wait a minute and try again.'
          : err.status === 401 ? 'That username and password do not match.' : err.message;
        error.append(h('div', { class: 'alert', role: 'alert' }, text));
        pass.select();
      } finally {
        submit.disabled = false;
      }
    } } },
    h('h1', {}, 'Log in to kai'),
    field('Username', user),
    field('Password', pass),
    error,
    h('div', { class: 'row' }, submit),
    h('p', { class: 'muted small' }, 'The owner password was printed when the node was first started (or set with KAI_OWNER_PASSWORD).'));
    root.append(h('div', { class: 'center' }, form));
    user.focus();
  },
};
