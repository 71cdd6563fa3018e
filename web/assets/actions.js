// What the user (and the live feed) makes happen: REST calls whose answers go into the store.

import { api, withQuery } from './api.js';
import {
  emit,
  emptyList,
  presenceMark,
  removeConv,
  resortList,
  setUsers,
  state,
  thread,
  upsertConv,
  upsertMessages,
} from './store.js';

const PAGE = 50;
const HISTORY_PAGE = 30;

async function allPages(path, max = 20) {
  const items = [];
  let cursor = null;
  for (let i = 0; i < max; i += 1) {
    const page = await api.get(withQuery(path, { limit: 100, cursor }));
    items.push(...page.items);
    cursor = page.next_cursor;
    if (!cursor) break;
  }
  return items;
}

export async function loadUsers() {
  const since = presenceMark();
  state.usersLoading += 1;
  emit('users');
  try {
    setUsers(await allPages('/api/v1/users'), { fetchedSince: since });
  } finally {
    state.usersLoading -= 1;
    emit('users');
  }
}

export async function loadIntegrations() {
  const page = await api.get('/api/v1/integrations');
  state.integrations = new Map(page.items.map((i) => [i.id, i]));
  emit('integrations', 'convs');
}

export async function loadSummary() {
  const body = await api.get('/api/v1/inbox/summary');
  state.summary = body.sections;
  emit('summary');
}

let summaryTimer = null;

/** Counts follow events: refetch the summary once things settle (many events → one request). */
export function scheduleSummary(delay = 150) {
  clearTimeout(summaryTimer);
  summaryTimer = setTimeout(() => loadSummary().catch(() => {}), delay);
}

export async function loadList(section, { more = false } = {}) {
  if (!more || state.list.section !== section) state.list = emptyList(section);
  const list = state.list;
  if (list.loading) return;
  list.loading = true;
  list.error = null;
  emit('list');
  try {
    const page = await api.get(
      withQuery('/api/v1/conversations', { section, limit: PAGE, cursor: more ? list.cursor : null }),
    );
    if (state.list !== list) return; // the user moved on to another section meanwhile
    list.cursor = page.next_cursor;
    for (const conv of page.items) {
      if (!list.ids.includes(conv.id)) list.ids.push(conv.id);
      upsertConv(conv);
    }
    list.loaded = true;
  } catch (error) {
    list.error = error;
  } finally {
    list.loading = false;
    emit('list');
  }
}

export function setSection(section) {
  if (state.section === section && state.list.section === section && state.list.loaded) return;
  state.section = section;
  emit('section');
  loadList(section);
}

export async function openConversation(id, { refresh = false } = {}) {
  if (state.openId !== id) {
    state.openId = id;
    state.openError = null;
    emit('open');
  }
  try {
    const conv = upsertConv(await api.get(`/api/v1/conversations/${id}`));
    if (state.openId !== id) return;
    if (!state.list.loaded || state.list.section !== conv.section) {
      // Opened from a link: show the section it is in.
      state.section = conv.section;
      emit('section');
      loadList(conv.section);
    }
    if (!thread(id).loaded) await loadHistory(id);
    else if (refresh) await loadNewest(id);
    markRead(id);
  } catch (error) {
    if (state.openId === id) {
      state.openError = error;
      emit('open');
    }
  }
}

export function closeConversation() {
  state.openId = null;
  state.openError = null;
  emit('open');
}

/** The newest page (first time) or the page before what is loaded (scrolling up). */
export async function loadHistory(convId, { older = false } = {}) {
  const t = thread(convId);
  if (t.loading || (older && (t.complete || !t.cursor))) return;
  t.loading = true;
  t.error = null;
  emit('thread');
  try {
    const page = await api.get(
      withQuery(`/api/v1/conversations/${convId}/messages`, {
        limit: HISTORY_PAGE,
        cursor: older ? t.cursor : null,
      }),
    );
    t.cursor = page.next_cursor;
    t.complete = !page.next_cursor;
    t.loaded = true;
    upsertMessages(convId, page.items);
  } catch (error) {
    t.error = error;
  } finally {
    t.loading = false;
    emit('thread');
  }
}

/** Merge the newest page into a loaded history (what may have been missed), keeping its cursor. */
async function loadNewest(convId) {
  const page = await api.get(withQuery(`/api/v1/conversations/${convId}/messages`, { limit: HISTORY_PAGE }));
  upsertMessages(convId, page.items);
}

const readTimers = new Map();

/** Mark read: now for the open conversation, debounced when messages keep coming. */
export function markRead(convId) {
  const conv = state.convs.get(convId);
  if (conv) {
    conv.unread_count = 0;
    emit('convs', 'list');
  }
  clearTimeout(readTimers.get(convId));
  readTimers.set(
    convId,
    setTimeout(async () => {
      readTimers.delete(convId);
      try {
        await api.post(`/api/v1/conversations/${convId}/read`);
      } catch {
        // Not fatal: the unread count stays on the server until the next read.
      }
      scheduleSummary(0);
    }, 100),
  );
}

export async function sendMessage(convId, text) {
  const message = await api.post(`/api/v1/conversations/${convId}/messages`, { text });
  upsertMessages(convId, [message]);
  return message;
}

async function change(convId, action, body) {
  const conv = await api.post(`/api/v1/conversations/${convId}/${action}`, body);
  upsertConv(conv);
  scheduleSummary(0);
  return conv;
}

export const assign = (id, userId, version) => change(id, 'assign', { user_id: userId, version });
export const unassign = (id, version) => change(id, 'unassign', { version });
export const closeConv = (id) => change(id, 'close');
export const reopenConv = (id) => change(id, 'reopen');

export async function deleteConv(id) {
  await api.del(`/api/v1/conversations/${id}`);
  removeConv(id);
  scheduleSummary(0);
}

export async function setAvailability(available) {
  const me = await api.put('/api/v1/me/availability', { available });
  state.me = { ...state.me, ...me };
  setUsers([me]);
}

// Notifications (issue 5; the endpoints may not be deployed yet) -------------------------------

export async function loadNotifications() {
  const n = state.notifications;
  n.loading += 1; // a count: the bell reloads on opening, maybe while the start's load is out
  emit('notifications');
  // What the page cannot hold: items pushed live while it was in flight (created after the
  // server read it) and items marked read here meanwhile (the server may have read them unread).
  const held = new Map(n.items.map((item) => [item.id, item]));
  try {
    const page = await api.get(withQuery('/api/v1/notifications', { limit: 50 }));
    const fetched = (page.items || []).map((item) => {
      const mine = held.get(item.id);
      return mine && isUnread(item) && !isUnread(mine) ? { ...item, read_at: mine.read_at } : item;
    });
    const fetchedIds = new Set(fetched.map((item) => item.id));
    const arrived = n.items.filter((item) => !held.has(item.id) && !fetchedIds.has(item.id));
    n.items = [...arrived, ...fetched];
    n.available = true;
  } catch (error) {
    if (error.missing) n.available = false;
  } finally {
    n.loading -= 1;
    emit('notifications');
  }
}

export function isUnread(notification) {
  return !(notification.read || notification.read_at || notification.seen_at);
}

export async function markNotificationsRead(ids) {
  const now = new Date().toISOString();
  for (const item of state.notifications.items) {
    if (!ids || ids.includes(item.id)) item.read_at = item.read_at || now;
  }
  emit('notifications');
  // Without ids: all of mine.
  await api.post('/api/v1/notifications/read', ids ? { ids } : {}).catch(() => {});
}

// Everything at once: at start, and when the live feed says we missed too much -----------------

let refreshing = null;
let again = null;

/** Refetch everything over REST. `resync`: events were lost, so loaded histories are dropped. */
export function refreshAll({ resync = false } = {}) {
  if (refreshing) {
    // A refresh is under way but may have read the state before what prompted this one.
    again = { resync: resync || Boolean(again?.resync) };
    return refreshing;
  }
  refreshing = (async () => {
    try {
      if (resync) state.threads.clear();
      await Promise.allSettled([loadUsers(), loadIntegrations()]);
      resortList();
      const work = [loadSummary(), loadList(state.section), loadNotifications()];
      if (state.openId != null) work.push(openConversation(state.openId, { refresh: true }));
      await Promise.allSettled(work);
    } finally {
      refreshing = null;
    }
    if (again) {
      const next = again;
      again = null;
      await refreshAll(next);
    }
  })();
  return refreshing;
}
