// The team panel: every member's presence and availability, and the open conversations each one
// holds (what a team lead looks at). Kept live from presence and conversation events.

import { api, describeError, withQuery } from '../api.js';
import { fill, h } from '../dom.js';
import { ago, plural, shortTime } from '../format.js';
import { on, state, upsertConv } from '../store.js';
import { presenceAvatar } from './assign-menu.js';

async function openAssigned() {
  const convs = [];
  for (const section of ['mine', 'others']) {
    let cursor = null;
    for (let page = 0; page < 10; page += 1) {
      const body = await api.get(withQuery('/api/v1/conversations', { section, limit: 100, cursor }));
      convs.push(...body.items);
      cursor = body.next_cursor;
      if (!cursor) break;
    }
  }
  return convs;
}

export function mountTeam() {
  const summary = h('p', { class: 'muted' });
  const grid = h('ul', { class: 'team-grid' });
  const el = h(
    'div',
    { class: 'page' },
    h('header', { class: 'page-header' }, h('h1', { class: 'page-title' }, 'Team'), summary),
    grid,
  );
  let loaded = false;
  let loading = false;
  let error = null;
  let visible = false;

  async function load() {
    if (loading) return;
    loading = true;
    render();
    try {
      for (const conv of await openAssigned()) upsertConv(conv);
      loaded = true;
      error = null;
    } catch (err) {
      error = err;
    } finally {
      loading = false;
      render();
    }
  }

  function render() {
    if (!visible) return;
    grid.setAttribute('aria-busy', String(loading || state.usersLoading > 0));
    const byUser = new Map();
    for (const conv of state.convs.values()) {
      if (conv.status !== 'open' || conv.assignee_id == null) continue;
      if (!byUser.has(conv.assignee_id)) byUser.set(conv.assignee_id, []);
      byUser.get(conv.assignee_id).push(conv);
    }
    const users = [...state.users.values()].sort(
      (a, b) => Number(b.online) - Number(a.online) || a.name.localeCompare(b.name),
    );
    const online = users.filter((u) => u.online).length;
    const available = users.filter((u) => u.available).length;
    const waiting = state.summary?.unassigned?.count;
    summary.textContent = [
      `${plural(users.length, 'member')}`,
      `${online} online`,
      `${available} available`,
      waiting != null ? `${waiting} unassigned waiting` : null,
    ]
      .filter(Boolean)
      .join(' · ');
    if (error) {
      fill(grid, h('li', { class: 'form-error' }, describeError(error)));
      return;
    }
    fill(
      grid,
      users.map((user) => {
        const convs = (byUser.get(user.id) || []).sort((a, b) => (b.last_message_at || '').localeCompare(a.last_message_at || ''));
        return h(
          'li',
          { class: 'member-card', dataset: { userId: String(user.id) } },
          h(
            'div',
            { class: 'member-head' },
            presenceAvatar(user, 'avatar-lg'),
            h(
              'div',
              { class: 'member-text' },
              h('h2', { class: 'member-name' }, user.id === state.me?.id ? `${user.name} (you)` : user.name),
              h('p', { class: 'muted small' }, user.role === 'admin' ? 'Admin' : 'Agent', ' · ', user.online ? 'Online now' : user.last_seen_at ? `Last seen ${ago(user.last_seen_at)}` : 'Not signed in yet'),
            ),
          ),
          h(
            'p',
            { class: 'member-status' },
            h('span', { class: `dot ${user.available ? 'dot-on' : 'dot-off'}`, 'aria-hidden': 'true' }),
            h('span', { class: 'member-availability' }, user.available ? 'Available' : 'Unavailable'),
            h('span', { class: 'member-count' }, loaded ? plural(convs.length, 'open conversation') : '…'),
          ),
          convs.length > 0 &&
            h(
              'ul',
              { class: 'member-convs' },
              convs.slice(0, 8).map((conv) =>
                h(
                  'li',
                  {},
                  h(
                    'a',
                    { href: `#/conversations/${conv.id}`, class: `member-conv${conv.unread_count ? ' unread' : ''}` },
                    h('span', { class: 'member-conv-name' }, conv.contact.name),
                    h('span', { class: 'muted small' }, shortTime(conv.last_message_at)),
                  ),
                ),
              ),
              convs.length > 8 && h('li', { class: 'muted small' }, `and ${convs.length - 8} more`),
            ),
        );
      }),
    );
  }

  on(['users', 'convs', 'summary'], render);
  // A load that failed while the connection was down is tried again once it is back.
  on(['connection'], () => {
    if (visible && state.connection === 'online' && error) load();
  });
  return {
    el,
    show() {
      visible = true;
      render();
      load();
    },
    hide() {
      visible = false;
    },
  };
}
