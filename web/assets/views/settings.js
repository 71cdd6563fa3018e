// Settings: notification settings for everyone; integrations and team members for admins.

import { fill, h } from '../dom.js';
import { on, state } from '../store.js';
import { integrationsSettings } from './integrations.js';
import { notificationSettings } from './notification-settings.js';
import { usersSettings } from './users.js';

const TABS = [
  { key: 'notifications', label: 'Notifications', admin: false, make: notificationSettings },
  { key: 'integrations', label: 'Messaging integrations', admin: false, make: integrationsSettings },
  { key: 'users', label: 'Team members', admin: true, make: usersSettings },
];

export function mountSettings() {
  const nav = h('nav', { class: 'tabs', 'aria-label': 'Settings' });
  const body = h('div', { class: 'settings-body' });
  const el = h('div', { class: 'page' }, h('header', { class: 'page-header' }, h('h1', { class: 'page-title' }, 'Settings')), nav, body);
  const made = new Map();
  let current = null;

  function renderNav() {
    const isAdmin = state.me?.role === 'admin';
    fill(
      nav,
      TABS.filter((t) => isAdmin || !t.admin).map((t) =>
        h('a', { class: 'tab', href: `#/settings/${t.key}`, 'aria-current': t.key === current ? 'page' : null }, t.label),
      ),
    );
  }
  on('me', renderNav);

  return {
    el,
    show(route) {
      const tab = TABS.find((t) => t.key === route.tab && (!t.admin || state.me?.role === 'admin')) || TABS[0];
      if (!made.has(tab.key)) made.set(tab.key, tab.make());
      const view = made.get(tab.key);
      if (current !== tab.key) {
        current = tab.key;
        fill(body, view.el);
        renderNav();
      }
      view.show?.();
    },
  };
}
