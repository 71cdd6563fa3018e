// Notification settings: desktop and email, per kind. Each change is saved at once.

import { api, describeError } from '../api.js';
import { fill, h } from '../dom.js';
import { NOTIFICATION_KINDS } from '../format.js';
import { on, state } from '../store.js';
import { renderPermission } from './bell.js';

const CHANNELS = [
  { key: 'desktop', label: 'Desktop' },
  { key: 'email', label: 'Email' },
];

export function notificationSettings() {
  const status = h('p', { class: 'save-status', role: 'status' });
  const table = h('div', { class: 'settings-table-wrap' });
  const permission = h('div', { class: 'permission-box' });
  const emailNote = h('p', { class: 'muted small' });
  const el = h(
    'section',
    { class: 'settings-section' },
    h('h2', { class: 'section-title' }, 'Notify me when…'),
    h('p', { class: 'muted' }, 'Desktop notifications appear while Switchboard is open in a tab; in-app notifications are always in the bell.'),
    permission,
    table,
    emailNote,
    status,
  );

  async function save(channel, kind, value, input) {
    status.textContent = 'Saving…';
    try {
      state.notificationSettings = await api.put('/api/v1/me/notification-settings', { [channel]: { [kind]: value } });
      status.textContent = 'Saved.';
    } catch (error) {
      input.checked = !value;
      status.textContent = `Not saved: ${describeError(error)}`;
    }
  }

  function render() {
    renderPermission(permission);
    emailNote.textContent = state.me ? `Email notifications go to ${state.me.email}.` : '';
    const settings = state.notificationSettings;
    if (!settings) {
      fill(table, h('p', { class: 'muted' }, 'Loading…'));
      return;
    }
    fill(
      table,
      h(
        'table',
        { class: 'settings-table' },
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Event'), CHANNELS.map((c) => h('th', { scope: 'col' }, c.label)))),
        h(
          'tbody',
          {},
          NOTIFICATION_KINDS.map((kind) =>
            h(
              'tr',
              {},
              h('th', { scope: 'row' }, kind.label),
              CHANNELS.map((channel) => {
                const input = h('input', {
                  type: 'checkbox',
                  class: 'switch',
                  name: `${channel.key}.${kind.key}`,
                  checked: Boolean(settings[channel.key]?.[kind.key]),
                  'aria-label': `${channel.label}: ${kind.label}`,
                });
                input.addEventListener('change', () => save(channel.key, kind.key, input.checked, input));
                return h('td', {}, input);
              }),
            ),
          ),
        ),
      ),
    );
  }

  on(['me', 'permission'], render);
  return {
    el,
    async show() {
      render();
      try {
        state.notificationSettings = await api.get('/api/v1/me/notification-settings');
        status.textContent = '';
      } catch (error) {
        status.textContent = error.missing ? 'Notification settings are not available on this server yet.' : describeError(error);
      }
      render();
    },
  };
}
