// The reply box: Enter sends, Shift+Enter adds a line; drafts are kept per conversation.

import { sendMessage } from '../actions.js';
import { describeError } from '../api.js';
import { h, icon } from '../dom.js';

const MAX = 4096;
const drafts = new Map();

export function composer() {
  const textarea = h('textarea', {
    class: 'composer-input',
    rows: 1,
    maxlength: MAX,
    placeholder: 'Write a reply…',
    'aria-label': 'Reply',
  });
  const send = h('button', { type: 'submit', class: 'btn btn-primary composer-send' }, icon('send', 'icon-sm'), h('span', {}, 'Send'));
  const error = h('p', { class: 'composer-error', role: 'alert', hidden: true });
  const hint = h('p', { class: 'composer-hint' });
  const form = h('form', { class: 'composer' }, error, h('div', { class: 'composer-row' }, textarea, send), hint);
  let convId = null;
  let closed = false;

  const renderHint = () => {
    const left = MAX - textarea.value.length;
    hint.textContent =
      left < 200
        ? `${left} characters left`
        : closed
          ? 'This conversation is closed; replying keeps it closed. Enter to send, Shift+Enter for a new line.'
          : 'Enter to send, Shift+Enter for a new line.';
    send.disabled = !textarea.value.trim() || form.classList.contains('sending');
  };

  const resize = () => {
    textarea.classList.toggle('tall', textarea.value.split('\n').length > 3 || textarea.value.length > 240);
  };

  textarea.addEventListener('input', () => {
    drafts.set(convId, textarea.value);
    error.hidden = true;
    resize();
    renderHint();
  });
  textarea.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const text = textarea.value.trim();
    if (!text || form.classList.contains('sending')) return;
    const id = convId;
    form.classList.add('sending');
    renderHint();
    try {
      await sendMessage(id, text);
      drafts.delete(id);
      if (convId === id) textarea.value = '';
      error.hidden = true;
    } catch (err) {
      error.textContent = `Not sent: ${describeError(err)}`;
      error.hidden = false;
    } finally {
      form.classList.remove('sending');
      resize();
      renderHint();
      textarea.focus();
    }
  });

  return {
    el: form,
    update(conv) {
      if (conv.id !== convId) {
        convId = conv.id;
        textarea.value = drafts.get(conv.id) || '';
        error.hidden = true;
        resize();
      }
      closed = conv.status === 'closed';
      renderHint();
    },
    focus() {
      textarea.focus();
    },
  };
}
