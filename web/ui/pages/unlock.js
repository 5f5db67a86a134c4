// Unlock a sealed node (`POST /vault/unlock`, public): with the passphrase or the unlock key.

import { h } from '../lib/dom.js';
import { unlockForm } from '../parts/unlock-form.js';

export default {
  mount(root) {
    root.append(h('div', { class: 'center' }, h('div', { class: 'card' },
      h('h1', {}, 'The vault is sealed'),
      h('p', { class: 'muted' }, 'The node holds no keys until it is unlocked. Until then it answers only health, status and unlock.'),
      unlockForm(() => window.dispatchEvent(new CustomEvent('kai:unsealed'))))));
    root.querySelector('input')?.focus();
  },
};
