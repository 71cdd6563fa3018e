// The bell: the in-app notification list with an unread badge, and a way to the settings.
// GET /api/v1/notifications may not be deployed yet: then the list says so.

import { isUnread, loadNotifications, markNotificationsRead } from '../actions.js';
import { fill, h, icon } from '../dom.js';
import { ago, fullTime } from '../format.js';
import { askDesktopPermission, desktopPermission } from '../notify.js';
import { emit, on, state } from '../store.js';
import { popover } from './menu.js';

export function mountBell() {
  const badge = h('span', { class: 'bell-badge', hidden: true });
  const trigger = h('button', { type: 'button', class: 'btn-icon bell', 'aria-label': 'Notifications', title: 'Notifications' }, icon('bell'), badge);
  const list = h('div', { class: 'bell-list' });
  const markAll = h('button', { type: 'button', class: 'btn btn-small btn-quiet menu-focusable' }, 'Mark all read');
  const permission = h('div', { class: 'bell-permission' });
  const panel = h(
    'div',
    { class: 'menu menu-right bell-panel', role: 'dialog', 'aria-label': 'Notifications' },
    h('div', { class: 'bell-head' }, h('h2', { class: 'bell-title' }, 'Notifications'), markAll),
    permission,
    list,
    h('a', { class: 'bell-settings menu-focusable', href: '#/settings/notifications' }, icon('gear', 'icon-sm'), 'Notification settings'),
  );
  const menu = popover(trigger, panel, { role: 'dialog', onOpen: () => loadNotifications() });
  panel.addEventListener('click', (event) => {
    if (event.target.closest('a')) menu.close({ focus: false });
  });
  markAll.addEventListener('click', () => markNotificationsRead(null));

  const render = () => {
    const n = state.notifications;
    const unread = n.items.filter(isUnread).length;
    badge.textContent = unread > 9 ? '9+' : String(unread);
    badge.hidden = unread === 0;
    trigger.setAttribute('aria-label', unread ? `Notifications, ${unread} unread` : 'Notifications');
    markAll.hidden = unread === 0;
    list.setAttribute('aria-busy', String(n.loading > 0));
    renderPermission(permission);
    if (n.available === false) {
      fill(list, h('p', { class: 'muted pad' }, 'In-app notifications are not available on this server yet.'));
    } else if (!n.items.length) {
      fill(list, h('p', { class: 'muted pad' }, n.loading > 0 ? 'Loading…' : 'You are all caught up.'));
    } else {
      fill(
        list,
        h(
          'ul',
          { class: 'notifications' },
          n.items.slice(0, 50).map((item) =>
            h(
              'li',
              {},
              h(
                'a',
                {
                  class: `notification${isUnread(item) ? ' unread' : ''}`,
                  href: item.conversation_id != null ? `#/conversations/${item.conversation_id}` : '#/inbox/mine',
                  onclick: () => markNotificationsRead([item.id]),
                },
                h('span', { class: 'notification-title' }, item.title || 'Notification'),
                item.body && h('span', { class: 'notification-body' }, item.body),
                h('time', { class: 'muted', datetime: item.created_at, title: fullTime(item.created_at) }, ago(item.created_at)),
              ),
            ),
          ),
        ),
      );
    }
  };
  on(['notifications', 'permission'], render);
  render();
  return h('div', { class: 'popover-anchor' }, trigger, panel);
}

/** Desktop notifications: say whether they are on, offer to turn them on. */
export function renderPermission(el) {
  const value = desktopPermission();
  if (value === 'granted' || value === 'unsupported') {
    fill(el);
    el.hidden = true;
    return;
  }
  el.hidden = false;
  if (value === 'denied') {
    fill(el, h('p', { class: 'muted small' }, 'Desktop notifications are blocked in this browser’s site settings.'));
    return;
  }
  const button = h('button', { type: 'button', class: 'btn btn-small menu-focusable' }, 'Enable desktop notifications');
  button.addEventListener('click', async () => {
    await askDesktopPermission();
    emit('permission');
  });
  fill(el, h('p', { class: 'muted small' }, 'Get a desktop alert when something needs you.'), button);
}
