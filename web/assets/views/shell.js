// The signed-in layout: header (availability, team, bell, settings, me), the offline banner, and
// the workspace whose panes the route chooses.

import { setAvailability } from '../actions.js';
import { describeError } from '../api.js';
import { avatar, fill, h, icon } from '../dom.js';
import { on, state } from '../store.js';
import { mountBell } from './bell.js';
import { mountConversation } from './conversation.js';
import { mountCrm } from './crm.js';
import { mountList } from './list.js';
import { popover } from './menu.js';
import { mountSections } from './sections.js';
import { mountSettings } from './settings.js';
import { mountTeam } from './team.js';
import { errorToast } from './toast.js';

export function mountShell(root, { onSignOut }) {
  const banner = offlineBanner();
  const header = h(
    'header',
    { class: 'topbar' },
    h('a', { class: 'brand', href: '#/inbox/unassigned' }, h('span', { class: 'brand-mark', 'aria-hidden': 'true' }), h('span', { class: 'brand-name' }, 'Switchboard')),
    h('div', { class: 'topbar-spacer' }),
    availabilityToggle(),
    h('a', { class: 'btn-icon', href: '#/team', 'aria-label': 'Team', title: 'Team' }, icon('team')),
    mountBell(),
    h('a', { class: 'btn-icon', href: '#/settings/notifications', 'aria-label': 'Settings', title: 'Settings' }, icon('gear')),
    userMenu(onSignOut),
  );

  const sections = h('nav', { class: 'pane sections-pane', 'aria-label': 'Inbox sections' });
  const list = h('section', { class: 'pane list-pane', 'aria-label': 'Conversations' });
  const conversation = h('main', { class: 'pane conversation-pane', id: 'main' });
  const crm = h('aside', { class: 'pane crm-pane', 'aria-label': 'Contact and CRM' });
  const page = h('main', { class: 'pane page-pane' });
  const workspace = h('div', { class: 'workspace' }, sections, list, conversation, crm, page);

  fill(root, h('a', { class: 'skip-link', href: '#main' }, 'Skip to conversation'), header, banner, h('div', { class: 'app-body' }, workspace));
  mountSections(sections);
  mountList(list);
  mountConversation(conversation);
  mountCrm(crm);
  const team = mountTeam();
  const settings = mountSettings();

  let current = null;
  const layout = () => {
    const route = state.route;
    workspace.dataset.page = route.name === 'team' || route.name === 'settings' ? route.name : 'inbox';
    workspace.classList.toggle('has-open', route.name === 'conversation');
    workspace.classList.toggle('crm-open', state.crmOpen);
    const wanted = route.name === 'team' ? team : route.name === 'settings' ? settings : null;
    if (wanted !== current) {
      current?.hide?.();
      fill(page, wanted ? wanted.el : '');
      current = wanted;
    }
    wanted?.show?.(route);
  };
  on(['route', 'crm'], layout);
  layout();
}

function availabilityToggle() {
  const dot = h('span', { class: 'dot' });
  const label = h('span', { class: 'availability-label' });
  const button = h('button', { type: 'button', class: 'availability', title: 'Toggle whether teammates can assign conversations to you' }, dot, label);
  const render = () => {
    const available = Boolean(state.me?.available);
    button.setAttribute('aria-pressed', String(available));
    button.setAttribute('aria-label', available ? 'Available (click to go unavailable)' : 'Unavailable (click to become available)');
    dot.className = `dot ${available ? 'dot-on' : 'dot-off'}`;
    label.textContent = available ? 'Available' : 'Unavailable';
  };
  button.addEventListener('click', async () => {
    button.disabled = true;
    try {
      await setAvailability(!state.me.available);
    } catch (error) {
      errorToast(describeError(error));
    } finally {
      button.disabled = false;
      button.focus();
    }
  });
  on('me', render);
  render();
  return button;
}

function userMenu(onSignOut) {
  const trigger = h('button', { type: 'button', class: 'me-button', 'aria-label': 'Account menu' });
  const who = h('div', { class: 'menu-header' });
  const panel = h(
    'div',
    { class: 'menu menu-right' },
    who,
    h('a', { role: 'menuitem', class: 'menu-item', href: '#/settings/notifications' }, 'Notification settings'),
    h('a', { role: 'menuitem', class: 'menu-item admin-only', href: '#/settings/integrations' }, 'Messaging integrations'),
    h('a', { role: 'menuitem', class: 'menu-item admin-only', href: '#/settings/users' }, 'Team members'),
    h('button', { type: 'button', role: 'menuitem', class: 'menu-item', onclick: () => onSignOut() }, 'Sign out'),
  );
  const menu = popover(trigger, panel);
  panel.addEventListener('click', (event) => {
    if (event.target.closest('a')) menu.close({ focus: false });
  });
  const render = () => {
    const me = state.me;
    if (!me) return;
    fill(trigger, avatar(me.name, me.id, 'avatar-sm'), h('span', { class: 'me-name' }, me.name), icon('chevron', 'icon-sm'));
    fill(who, h('strong', {}, me.name), h('span', { class: 'muted' }, me.email), h('span', { class: 'muted' }, me.role === 'admin' ? 'Admin' : 'Agent'));
    for (const el of panel.querySelectorAll('.admin-only')) el.hidden = me.role !== 'admin';
  };
  on('me', render);
  render();
  return h('div', { class: 'popover-anchor' }, trigger, panel);
}

function offlineBanner() {
  const retry = h('button', { type: 'button', class: 'btn btn-small' }, 'Retry now');
  const banner = h(
    'div',
    { class: 'banner banner-offline', role: 'status', hidden: true },
    h('span', { class: 'banner-dot', 'aria-hidden': 'true' }),
    h('span', {}, 'You are offline. Reconnecting… Changes will appear when the connection is back.'),
    retry,
  );
  retry.addEventListener('click', () => window.dispatchEvent(new Event('switchboard:reconnect')));
  on('connection', () => {
    banner.hidden = state.connection !== 'offline';
  });
  return banner;
}
