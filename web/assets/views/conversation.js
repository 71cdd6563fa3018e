// One conversation: its header and actions, its history (older pages load on scroll), the composer.

import { closeConv, deleteConv, loadHistory, reopenConv } from '../actions.js';
import { describeError } from '../api.js';
import { avatar, fill, h, icon, safeUrl } from '../dom.js';
import { clockTime, dayKey, dayLabel, fullTime, PROVIDERS, STATUS_LABEL } from '../format.js';
import { emit, isInstaller, on, state } from '../store.js';
import { assignMenu } from './assign-menu.js';
import { composer } from './composer.js';
import { popover } from './menu.js';
import { confirmDialog, errorToast, toast } from './toast.js';

export function mountConversation(root) {
  const empty = h(
    'div',
    { class: 'empty empty-large' },
    h('div', { class: 'empty-mark', 'aria-hidden': 'true' }, icon('inbox')),
    h('h2', {}, 'Select a conversation'),
    h('p', { class: 'muted' }, 'Pick one from the list to read it and reply. New messages appear as they arrive.'),
  );
  const view = conversationView();
  let shown = null;

  const render = () => {
    const open = state.route.name === 'conversation' && state.openId != null;
    const conv = open ? state.convs.get(state.openId) : null;
    let wanted;
    if (!open) wanted = empty;
    else if (state.openError) wanted = errorState(state.openError);
    else if (!conv) wanted = h('p', { class: 'muted center pad' }, 'Loading…');
    else wanted = view.el;
    if (wanted !== shown) {
      fill(root, wanted);
      shown = wanted;
    }
    if (wanted === view.el) view.update(conv);
  };
  on(['open', 'convs', 'thread', 'route', 'integrations', 'users', 'crm'], render);
  render();
}

function errorState(error) {
  const missing = error.status === 404 || error.code === 'deleted';
  return h(
    'div',
    { class: 'empty empty-large' },
    h('h2', {}, missing ? 'Conversation not found' : 'Could not open the conversation'),
    h('p', { class: 'muted' }, missing ? 'It was deleted, or you do not have access to its channel.' : describeError(error)),
    h('a', { class: 'btn', href: `#/inbox/${state.section}` }, 'Back to the inbox'),
  );
}

function conversationView() {
  const back = h('a', { class: 'btn-icon back-link', 'aria-label': 'Back to the list' }, icon('back'));
  const who = h('div', { class: 'conv-who' });
  const assign = assignMenu();
  const statusButton = h('button', { type: 'button', class: 'btn' });
  const deleteButton = h('button', { type: 'button', role: 'menuitem', class: 'menu-item danger' }, 'Delete conversation…');
  const moreButton = h('button', { type: 'button', class: 'btn-icon', 'aria-label': 'More actions', title: 'More actions' }, icon('more', 'icon-more'));
  const morePanel = h('div', { class: 'menu menu-right' }, deleteButton);
  const more = popover(moreButton, morePanel);
  const moreMenu = h('div', { class: 'popover-anchor' }, moreButton, morePanel);
  const details = h('button', { type: 'button', class: 'btn-icon details-toggle', 'aria-label': 'Contact and CRM details', title: 'Contact and CRM details' }, icon('details'));
  const header = h(
    'header',
    { class: 'conv-header' },
    back,
    who,
    h('div', { class: 'conv-actions' }, assign.el, statusButton, moreMenu, details),
  );
  const top = h('div', { class: 'history-top' });
  const ol = h('ol', { class: 'messages', 'aria-live': 'polite', 'aria-relevant': 'additions' });
  const history = h('div', { class: 'history', tabindex: '0', 'aria-label': 'Conversation history' }, top, ol);
  const reply = composer();
  const el = h('div', { class: 'conv-view' }, header, history, reply.el);

  let conv = null;
  let convId = null;
  let shownThread = null;
  const rendered = new Map(); // message id → {li, signature}

  statusButton.addEventListener('click', async () => {
    statusButton.disabled = true;
    try {
      if (conv.status === 'open') {
        await closeConv(conv.id);
        toast('Conversation ended. It is in Closed now.');
      } else {
        await reopenConv(conv.id);
      }
    } catch (error) {
      errorToast(describeError(error));
    } finally {
      statusButton.disabled = false;
      statusButton.focus();
    }
  });
  deleteButton.addEventListener('click', async () => {
    more.close({ focus: false });
    const ok = await confirmDialog({
      title: 'Delete this conversation?',
      body: `The conversation with ${conv.contact.name} and its whole history are removed for everyone. This cannot be undone.`,
      confirm: 'Delete conversation',
      danger: true,
    });
    if (!ok) return;
    try {
      const section = state.section;
      await deleteConv(conv.id);
      toast('Conversation deleted.');
      location.hash = `#/inbox/${section}`;
    } catch (error) {
      errorToast(describeError(error));
    }
  });
  details.addEventListener('click', () => {
    state.crmOpen = !state.crmOpen;
    emit('crm');
  });
  const loadOlderIfAtTop = () => {
    const t = state.threads.get(convId);
    if (t && history.scrollTop < 150 && !t.complete && !t.loading && t.loaded) {
      loadHistory(convId, { older: true });
    }
  };
  history.addEventListener('scroll', loadOlderIfAtTop);

  function renderHeader() {
    back.href = `#/inbox/${state.section}`;
    const closed = conv.status === 'closed';
    fill(
      who,
      avatar(conv.contact.name, conv.contact.id),
      h(
        'div',
        { class: 'conv-who-text' },
        h('h1', { class: 'conv-title' }, conv.contact.name || conv.contact.handle),
        h(
          'p',
          { class: 'conv-subtitle' },
          h('span', { class: `chip ${closed ? 'chip-closed' : 'chip-open'}` }, closed ? 'Closed' : 'Open'),
          h('span', { class: `chip chip-${conv.provider}` }, PROVIDERS[conv.provider] || conv.provider),
          h('span', { class: 'muted' }, conv.contact.handle),
        ),
      ),
    );
    assign.update(conv);
    statusButton.textContent = closed ? 'Reopen' : 'End conversation';
    moreMenu.hidden = !isInstaller(conv); // deleting is the installer's alone
    details.setAttribute('aria-pressed', String(state.crmOpen));
  }

  function renderTop(t) {
    if (t.error) {
      fill(top, h('p', { class: 'form-error' }, describeError(t.error)), h('button', { type: 'button', class: 'btn btn-small', onclick: () => loadHistory(convId, { older: t.loaded }) }, 'Try again'));
    } else if (t.loading) fill(top, h('p', { class: 'muted' }, 'Loading messages…'));
    else if (t.loaded && !t.complete) {
      fill(top, h('button', { type: 'button', class: 'btn btn-small', onclick: () => loadHistory(convId, { older: true }) }, 'Load earlier messages'));
    } else if (t.loaded) fill(top, h('p', { class: 'history-start' }, 'Beginning of the conversation'));
    else fill(top);
  }

  function renderMessages() {
    const t = state.threads.get(convId);
    if (!t) return;
    if (t !== shownThread) {
      // A new history (first open, or refetched after a resync): start from scratch.
      shownThread = t;
      rendered.clear();
      ol.replaceChildren();
    }
    const fromBottom = history.scrollHeight - history.scrollTop;
    const atBottom = history.scrollHeight - history.scrollTop - history.clientHeight < 80;
    const firstBefore = ol.firstChild;
    const initial = rendered.size === 0;
    let newestOutbound = false;

    let previous = null;
    let previousDay = null;
    for (const id of t.ids) {
      const message = t.byId.get(id);
      const day = dayKey(message.created_at);
      const showDay = day !== previousDay;
      previousDay = day;
      const signature = `${message.status}|${message.error}|${showDay}|${message.text}`;
      let entry = rendered.get(id);
      if (!entry) {
        entry = { li: h('li', { class: 'msg', dataset: { id: String(id) } }), signature: null };
        rendered.set(id, entry);
        if (message.direction === 'outbound' && message.sender?.id === state.me?.id) newestOutbound = true;
      }
      if (entry.signature !== signature) {
        renderMessage(entry.li, message, showDay);
        entry.signature = signature;
      }
      const expected = previous ? previous.nextSibling : ol.firstChild;
      if (expected !== entry.li) ol.insertBefore(entry.li, expected);
      previous = entry.li;
    }
    renderTop(t);

    if (initial || atBottom || newestOutbound) history.scrollTop = history.scrollHeight;
    else if (firstBefore && ol.firstChild !== firstBefore) {
      history.scrollTop = history.scrollHeight - fromBottom; // older messages came in above
    }
    // Still at the top (a short page, or the user scrolled up while loading): load more.
    if (t.loaded && t.ids.length) queueMicrotask(loadOlderIfAtTop);
  }

  return {
    el,
    update(next) {
      conv = next;
      if (conv.id !== convId) {
        convId = conv.id;
        shownThread = null;
        fill(top);
        queueMicrotask(() => reply.focus());
      }
      renderHeader();
      reply.update(conv);
      renderMessages();
    },
  };
}

function renderMessage(li, message, showDay) {
  const outbound = message.direction === 'outbound';
  const failed = message.status === 'failed';
  li.className = `msg ${outbound ? 'msg-out' : 'msg-in'}${failed ? ' msg-failed' : ''}`;
  const attachments = (message.attachments || []).map((a) => {
    const url = safeUrl(a.url);
    const label = `Attachment${a.type || a.content_type ? ` (${a.type || a.content_type})` : ''}`;
    return url
      ? h('a', { class: 'attachment', href: url, target: '_blank', rel: 'noopener noreferrer' }, label)
      : h('span', { class: 'attachment' }, label);
  });
  const status = outbound
    ? h('span', { class: `msg-status status-${message.status}` }, STATUS_LABEL[message.status] || message.status)
    : null;
  fill(
    li,
    showDay && h('div', { class: 'day-separator' }, h('span', {}, dayLabel(message.created_at))),
    h(
      'div',
      { class: 'bubble' },
      // Message text is data: always a text node, never HTML.
      h('p', { class: 'msg-text' }, message.text),
      attachments,
    ),
    h(
      'div',
      { class: 'msg-meta' },
      h('span', { class: 'msg-sender' }, message.sender?.name || (outbound ? 'Agent' : 'Contact')),
      h('time', { datetime: message.created_at, title: fullTime(message.created_at) }, clockTime(message.created_at)),
      status,
    ),
    failed && h('p', { class: 'msg-error', role: 'note' }, icon('alert', 'icon-sm'), `Not delivered: ${message.error || 'the provider refused it.'}`),
  );
}
