// Short messages in a corner, and a modal confirmation for destructive actions.

import { h } from '../dom.js';

let region = null;

function ensureRegion() {
  if (!region || !region.isConnected) {
    region = h('div', { class: 'toasts', role: 'status', 'aria-live': 'polite' });
    document.body.append(region);
  }
  return region;
}

/** toast('Saved') or toast(message, {kind: 'error', action: 'Open', onAction}). */
export function toast(message, { kind = 'info', action = null, onAction = null, timeout = 6000 } = {}) {
  const item = h('div', { class: `toast toast-${kind}` }, h('span', { class: 'toast-text' }, message));
  const dismiss = () => item.remove();
  if (action) {
    item.append(
      h('button', { type: 'button', class: 'btn btn-link', onclick: () => { dismiss(); onAction?.(); } }, action),
    );
  }
  item.append(h('button', { type: 'button', class: 'btn-icon toast-close', 'aria-label': 'Dismiss', onclick: dismiss }, '×'));
  ensureRegion().append(item);
  setTimeout(dismiss, timeout);
}

export function errorToast(message) {
  toast(message, { kind: 'error', timeout: 9000 });
}

/** A modal confirmation; resolves true when confirmed. Escape or Cancel resolve false. */
export function confirmDialog({ title, body, confirm = 'Confirm', danger = false }) {
  return new Promise((resolve) => {
    const cancelBtn = h('button', { type: 'button', class: 'btn', value: 'cancel' }, 'Cancel');
    const okBtn = h('button', { type: 'submit', class: `btn ${danger ? 'btn-danger' : 'btn-primary'}`, value: 'ok' }, confirm);
    const dialog = h(
      'dialog',
      { class: 'dialog', 'aria-labelledby': 'dialog-title' },
      h(
        'form',
        { method: 'dialog' },
        h('h2', { id: 'dialog-title', class: 'dialog-title' }, title),
        h('p', { class: 'dialog-body' }, body),
        h('div', { class: 'dialog-actions' }, cancelBtn, okBtn),
      ),
    );
    cancelBtn.addEventListener('click', () => dialog.close('cancel'));
    dialog.addEventListener('close', () => {
      resolve(dialog.returnValue === 'ok');
      dialog.remove();
    });
    document.body.append(dialog);
    dialog.showModal();
    cancelBtn.focus();
  });
}
