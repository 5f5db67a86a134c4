// The unlock form, shared by the sealed-node page and the vault page.

import { h, field } from '../lib/dom.js';
import { post } from '../lib/api.js';

/** A form that unlocks the vault and then calls `done()`. */
export function unlockForm(done) {
  const mode = h('select', {}, h('option', { value: 'passphrase' }, 'Passphrase'), h('option', { value: 'key' }, 'Unlock key (from vault.key)'));
  const secret = h('input', { type: 'password', autocomplete: 'current-password', required: true, maxlength: 4096 });
  const label = h('label', { for: 'unlock-secret' }, 'Passphrase');
  secret.id = 'unlock-secret';
  mode.addEventListener('change', () => { label.textContent = mode.value === 'key' ? 'Unlock key' : 'Passphrase'; secret.focus(); });
  const error = h('div', { 'aria-live': 'assertive' });
  const submit = h('button', { type: 'submit', class: 'btn primary' }, 'Unlock');
  return h('form', { on: { submit: async (e) => {
    e.preventDefault();
    error.replaceChildren();
    submit.disabled = true;
    submit.textContent = 'Unlocking…';
    try {
      await post('/vault/unlock', mode.value === 'key' ? { key: secret.value.trim() } : { passphrase: secret.value }, { auth: false });
      secret.value = '';
      done();
    } catch (err) {
      const text = err.status === 429 ? 'Too many failed attempts; wait a minute and try again.'
        : err.status === 401 ? `That ${mode.value === 'key' ? 'unlock key' : 'passphrase'} is not right.` : err.message;
      error.append(h('div', { class: 'alert', role: 'alert' }, text));
      secret.select();
    } finally {
      submit.disabled = false;
      submit.textContent = 'Unlock';
    }
  } } },
  field('Unlock with', mode),
  h('div', { class: 'field' }, label, secret),
  error,
  submit);
}
