// Small form helpers shared by the settings pages: labelled fields and per-field server errors.

import { ApiError, describeError } from '../api.js';
import { h } from '../dom.js';

let uid = 0;

/** A labelled input with a slot for its error; `name` is the server's field path. `input` may be
 * a wrapper (input plus buttons): then `control` is the input the label names. */
export function labelled(label, input, { name = input.name, hint = null, control = input } = {}) {
  uid += 1;
  control.id = control.id || `field-${uid}`;
  const error = h('span', { class: 'field-error', dataset: { field: name }, hidden: true });
  return h(
    'div',
    { class: 'field' },
    h('label', { class: 'field-label', for: control.id }, label),
    input,
    hint && h('span', { class: 'hint' }, hint),
    error,
  );
}

/** Show an ApiError's `fields` next to their inputs; the rest in the summary element. */
export function showFieldErrors(form, error, summary) {
  const fields = error instanceof ApiError ? { ...error.fields } : {};
  for (const el of form.querySelectorAll('.field-error')) {
    const message = fields[el.dataset.field];
    delete fields[el.dataset.field];
    el.textContent = message || '';
    el.hidden = !message;
  }
  if (!summary) return;
  const rest = Object.entries(fields).map(([field, msg]) => `${field}: ${msg}`);
  const text = error ? (rest.length ? rest.join('; ') : error.code === 'validation_error' ? 'Please check the highlighted fields.' : describeError(error)) : '';
  summary.textContent = text;
  summary.hidden = !text;
}

export function randomSecret() {
  const bytes = new Uint8Array(24);
  crypto.getRandomValues(bytes);
  return [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('');
}
