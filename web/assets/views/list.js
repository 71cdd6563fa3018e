// The conversation list of the current section, re-ordered live as events arrive.

import { loadList } from '../actions.js';
import { describeError } from '../api.js';
import { avatar, fill, h } from '../dom.js';
import { PROVIDERS, SECTION_LABEL, shortTime } from '../format.js';
import { on, state, userName } from '../store.js';

const EMPTY = {
  unassigned: 'No one is waiting. New conversations land here.',
  mine: 'Nothing assigned to you right now.',
  others: 'No conversations are assigned to teammates.',
  closed: 'No closed conversations yet.',
};

export function mountList(root) {
  const title = h('h2', { class: 'pane-title' });
  const count = h('span', { class: 'pane-count' });
  const ul = h('ul', { class: 'conv-list' });
  const status = h('div', { class: 'list-status' });
  const more = h('button', { type: 'button', class: 'btn btn-block', hidden: true }, 'Load more');
  more.addEventListener('click', () => loadList(state.list.section, { more: true }));
  fill(root, h('div', { class: 'pane-header' }, title, count), h('div', { class: 'pane-scroll' }, ul, status, more));

  const items = new Map(); // id → <li>

  const render = () => {
    const list = state.list;
    title.textContent = SECTION_LABEL[list.section];
    const summary = state.summary?.[list.section];
    count.textContent = summary ? String(summary.count) : '';

    const wanted = new Set(list.ids);
    for (const [id, li] of items) {
      if (!wanted.has(id)) {
        li.remove();
        items.delete(id);
      }
    }
    let previous = null;
    for (const id of list.ids) {
      const conv = state.convs.get(id);
      if (!conv) continue;
      let li = items.get(id);
      if (!li) {
        li = h('li', { class: 'conv-row', dataset: { id: String(id) } });
        items.set(id, li);
      }
      renderItem(li, conv);
      // Move only what is out of place, so a focused row keeps its focus.
      const expected = previous ? previous.nextSibling : ul.firstChild;
      if (expected !== li) ul.insertBefore(li, expected);
      previous = li;
    }

    if (list.error) fill(status, h('p', { class: 'form-error' }, describeError(list.error)));
    else if (list.loading && !list.ids.length) fill(status, h('p', { class: 'muted center' }, 'Loading…'));
    else if (list.loaded && !list.ids.length) fill(status, h('div', { class: 'empty' }, h('p', {}, EMPTY[list.section])));
    else fill(status);
    more.hidden = !list.cursor;
    more.disabled = list.loading;
  };
  on(['list', 'convs', 'summary', 'open', 'users'], render);
  render();
}

function renderItem(li, conv) {
  const last = conv.last_message;
  const unread = conv.unread_count || 0;
  const preview = last
    ? `${last.direction === 'outbound' ? 'You: ' : ''}${last.text}`
    : 'No messages yet';
  const assignee = conv.assignee_id != null ? userName(conv.assignee_id) : null;
  const selected = state.openId === conv.id && state.route.name === 'conversation';
  const failed = last && last.status === 'failed';
  let link = li.firstChild;
  if (!link) {
    link = h('a', { class: 'conv-item' });
    li.append(link);
  }
  link.href = `#/conversations/${conv.id}`;
  link.classList.toggle('unread', unread > 0);
  link.classList.toggle('selected', selected);
  if (selected) link.setAttribute('aria-current', 'true');
  else link.removeAttribute('aria-current');
  fill(
    link,
    avatar(conv.contact.name, conv.contact.id),
    h(
      'span',
      { class: 'conv-main' },
      h(
        'span',
        { class: 'conv-top' },
        h('span', { class: 'conv-name' }, conv.contact.name || conv.contact.handle),
        h('time', { class: 'conv-time', datetime: conv.last_message_at || '' }, shortTime(conv.last_message_at)),
      ),
      h('span', { class: `conv-preview${failed ? ' failed' : ''}` }, failed ? `Not delivered — ${preview}` : preview),
      h(
        'span',
        { class: 'conv-meta' },
        h('span', { class: `chip chip-${conv.provider}` }, PROVIDERS[conv.provider] || conv.provider),
        assignee && h('span', { class: 'conv-assignee' }, conv.assignee_id === state.me?.id ? 'You' : assignee),
        unread > 0 && h('span', { class: 'badge', 'aria-label': `${unread} unread` }, String(unread)),
      ),
    ),
  );
}
