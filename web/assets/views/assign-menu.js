// The assign menu: every user with shared access to the conversation's channel; unavailable ones
// are listed but disabled. Unassign at the bottom.

import { assign, openConversation, unassign } from '../actions.js';
import { describeError } from '../api.js';
import { avatar, fill, h, icon } from '../dom.js';
import { on, sharedUsers, state, userName } from '../store.js';
import { popover } from './menu.js';
import { errorToast } from './toast.js';

export function presenceAvatar(user, size = '') {
  return h(
    'span',
    { class: 'avatar-wrap' },
    avatar(user.name, user.id, size),
    h('span', { class: `presence ${user.online ? 'presence-online' : 'presence-offline'}`, title: user.online ? 'Online' : 'Offline' }),
  );
}

export function assignMenu() {
  const trigger = h('button', { type: 'button', class: 'btn assign-trigger' });
  const panel = h('div', { class: 'menu assign-menu' });
  const wrapper = h('div', { class: 'popover-anchor' }, trigger, panel);
  let conv = null;
  const menu = popover(trigger, panel, { onOpen: () => renderPanel() });

  async function run(action) {
    const id = conv.id;
    menu.close();
    try {
      await action();
    } catch (error) {
      errorToast(describeError(error));
      if (error.code === 'version_conflict' || error.code === 'assignee_unavailable') openConversation(id);
    }
  }

  function renderTrigger() {
    if (!conv) return;
    const name = conv.assignee_id != null ? userName(conv.assignee_id) : null;
    const label = name ? (conv.assignee_id === state.me?.id ? 'Assigned to you' : `Assigned to ${name}`) : 'Assign';
    fill(trigger, icon('user', 'icon-sm'), h('span', { class: 'assign-label' }, label), icon('chevron', 'icon-sm'));
    trigger.setAttribute('aria-label', name ? `${label}. Change assignee` : 'Assign this conversation');
  }

  function renderPanel() {
    if (!conv) return;
    const focusedId = document.activeElement?.closest?.('.assign-menu')
      ? document.activeElement.dataset.userId
      : null;
    const users = sharedUsers(conv.integration_id).sort((a, b) => {
      if (a.id === state.me?.id) return -1;
      if (b.id === state.me?.id) return 1;
      return a.name.localeCompare(b.name);
    });
    const items = users.map((user) => {
      const current = conv.assignee_id === user.id;
      const note = !user.available ? 'Unavailable' : user.online ? 'Online' : 'Offline';
      return h(
        'button',
        {
          type: 'button',
          role: 'menuitemradio',
          class: 'menu-item assign-option',
          'aria-checked': String(current),
          disabled: !user.available,
          title: user.available ? null : `${user.name} is unavailable and cannot be assigned`,
          dataset: { userId: String(user.id) },
          onclick: () => run(() => assign(conv.id, user.id, conv.version)),
        },
        presenceAvatar(user, 'avatar-sm'),
        h('span', { class: 'assign-name' }, user.id === state.me?.id ? `${user.name} (you)` : user.name),
        h('span', { class: `assign-note${user.available ? '' : ' unavailable'}` }, note),
        current && icon('check', 'icon-sm check'),
      );
    });
    fill(
      panel,
      h('div', { class: 'menu-header' }, 'Assign to'),
      items.length ? items : h('p', { class: 'menu-empty' }, 'No one has access to this channel.'),
      conv.assignee_id != null &&
        h('hr', { class: 'menu-sep' }),
      conv.assignee_id != null &&
        h('button', { type: 'button', role: 'menuitem', class: 'menu-item', onclick: () => run(() => unassign(conv.id, conv.version)) }, 'Unassign'),
    );
    if (focusedId) panel.querySelector(`[data-user-id="${CSS.escape(focusedId)}"]`)?.focus();
  }

  on(['users', 'integrations', 'me'], () => {
    renderTrigger();
    if (menu.isOpen()) renderPanel();
  });

  return {
    el: wrapper,
    update(next) {
      conv = next;
      renderTrigger();
      if (menu.isOpen()) renderPanel();
    },
  };
}
