// The four inbox sections with their live counts and unread badges.

import { fill, h, icon } from '../dom.js';
import { SECTIONS } from '../format.js';
import { on, state } from '../store.js';

export function mountSections(root) {
  const links = new Map();
  const list = h('ul', { class: 'sections' });
  for (const { key, label } of SECTIONS) {
    const count = h('span', { class: 'section-count' });
    const unread = h('span', { class: 'badge badge-soft', hidden: true });
    const link = h(
      'a',
      { class: 'section-link', href: `#/inbox/${key}`, dataset: { section: key } },
      h('span', { class: 'section-label' }, label),
      unread,
      count,
    );
    links.set(key, { link, count, unread, label });
    list.append(h('li', {}, link));
  }
  fill(root, h('h2', { class: 'pane-title' }, icon('inbox'), 'Inbox'), list);

  const render = () => {
    for (const [key, { link, count, unread, label }] of links) {
      const s = state.summary?.[key];
      count.textContent = s ? String(s.count) : '';
      unread.textContent = s && s.unread ? String(s.unread) : '';
      unread.title = s && s.unread ? `${s.unread} with unread messages` : '';
      unread.hidden = !(s && s.unread);
      const current = state.section === key && state.route.name !== 'team' && state.route.name !== 'settings';
      if (current) link.setAttribute('aria-current', 'page');
      else link.removeAttribute('aria-current');
      const unreadText = s && s.unread ? `, ${s.unread} unread` : '';
      link.setAttribute('aria-label', s ? `${label}: ${s.count}${unreadText}` : label);
    }
  };
  on(['summary', 'section', 'route'], render);
  render();
}
