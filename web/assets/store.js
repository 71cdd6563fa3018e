// The client's state, the derived views of it (sections, list order), and change notifications.
// Mutations here are synchronous and never call the server; actions.js does the fetching.

import { toTime } from './format.js';

export const state = {
  me: null,
  users: new Map(), // id → user
  usersLoading: 0, // users lists on their way
  integrations: new Map(), // id → integration
  summary: null, // {unassigned: {count, unread}, ...}
  route: { name: 'inbox', section: 'unassigned' },
  section: 'unassigned',
  list: emptyList('unassigned'),
  convs: new Map(), // id → conversation (as this user sees it)
  openId: null,
  openError: null,
  threads: new Map(), // conversation id → thread of messages
  connection: 'connecting', // 'connecting' | 'online' | 'offline'
  everOnline: false,
  notifications: { available: null, items: [], loading: 0 }, // loading: lists on their way
  notificationSettings: null,
  notes: new Map(), // conversation id → Map(note id → note)
  crmAvailable: null,
  // The details panel: a column on wide screens (open at first), a drawer on narrower ones.
  crmOpen: window.matchMedia('(min-width: 1281px)').matches,
};

export function emptyList(section) {
  return { section, ids: [], cursor: null, loading: false, loaded: false, error: null };
}

function emptyThread() {
  return { ids: [], byId: new Map(), cursor: null, complete: false, loading: false, loaded: false, error: null };
}

// Change notifications ------------------------------------------------------------------------

const listeners = new Map();

/** Call fn when any of the topics changes; returns the unsubscribe function. */
export function on(topics, fn) {
  for (const topic of [].concat(topics)) {
    if (!listeners.has(topic)) listeners.set(topic, new Set());
    listeners.get(topic).add(fn);
  }
  return () => {
    for (const topic of [].concat(topics)) listeners.get(topic)?.delete(fn);
  };
}

let pending = new Set();
let scheduled = false;

/** Notify listeners, batched to one call per listener per microtask. */
export function emit(...topics) {
  for (const topic of topics) pending.add(topic);
  if (scheduled) return;
  scheduled = true;
  queueMicrotask(() => {
    const topicsNow = pending;
    pending = new Set();
    scheduled = false;
    const called = new Set();
    for (const topic of topicsNow) {
      for (const fn of listeners.get(topic) || []) {
        if (called.has(fn)) continue;
        called.add(fn);
        try {
          fn(topicsNow);
        } catch (error) {
          console.error(error);
        }
      }
    }
  });
}

// Derived -------------------------------------------------------------------------------------

/** The section a conversation is in for me: derived from status and assignee (events omit it). */
export function sectionOf(conv) {
  if (conv.status === 'closed') return 'closed';
  if (conv.assignee_id == null) return 'unassigned';
  return state.me && conv.assignee_id === state.me.id ? 'mine' : 'others';
}

/** Newest activity first, then higher id first: the server's order. */
export function compareConvs(a, b) {
  return toTime(b.last_message_at) - toTime(a.last_message_at) || b.id - a.id;
}

export function userName(id) {
  if (id == null) return null;
  return state.users.get(id)?.name || `User ${id}`;
}

/** Users with shared access to an integration: its installer and everyone it is shared with. */
export function sharedUsers(integrationId) {
  const integration = state.integrations.get(integrationId);
  const users = [...state.users.values()];
  if (!integration) return users;
  const ids = new Set([integration.installed_by, ...(integration.shared_with || [])]);
  return users.filter((u) => ids.has(u.id));
}

export function isInstaller(conv) {
  const integration = state.integrations.get(conv.integration_id);
  return Boolean(integration && state.me && integration.installed_by === state.me.id);
}

// Conversations -------------------------------------------------------------------------------

/** Merge a conversation from REST or an event; stale copies (older updated_at) are ignored. */
export function upsertConv(conv) {
  const existing = state.convs.get(conv.id);
  if (existing && toTime(existing.updated_at) > toTime(conv.updated_at)) return existing;
  const merged = { ...existing, ...conv };
  if (conv.unread_count === undefined) merged.unread_count = existing?.unread_count ?? 0;
  merged.section = sectionOf(merged);
  state.convs.set(conv.id, merged);
  placeInList(merged);
  emit('convs', 'list');
  return merged;
}

/** Keep the loaded list of the current section in step with a conversation's section and time. */
function placeInList(conv) {
  const list = state.list;
  const index = list.ids.indexOf(conv.id);
  const belongs = sectionOf(conv) === list.section;
  if (!belongs) {
    if (index >= 0) list.ids.splice(index, 1);
    return;
  }
  if (index < 0) {
    // Older than everything loaded while more pages exist: it will come with those pages.
    const last = state.convs.get(list.ids[list.ids.length - 1]);
    if (list.cursor && last && compareConvs(conv, last) > 0) return;
    list.ids.push(conv.id);
  }
  list.ids.sort((a, b) => compareConvs(state.convs.get(a), state.convs.get(b)));
}

export function removeConv(id) {
  state.convs.delete(id);
  state.threads.delete(id);
  const index = state.list.ids.indexOf(id);
  if (index >= 0) state.list.ids.splice(index, 1);
  emit('convs', 'list');
}

/** Re-derive every section (after my own id is known or the list changed section). */
export function resortList() {
  for (const conv of state.convs.values()) {
    conv.section = sectionOf(conv);
    placeInList(conv);
  }
  emit('list');
}

// Messages ------------------------------------------------------------------------------------

const STATUS_RANK = { received: 0, queued: 0, sent: 1, delivered: 2, read: 3, failed: 4 };

export function thread(convId) {
  if (!state.threads.has(convId)) state.threads.set(convId, emptyThread());
  return state.threads.get(convId);
}

/** Add or update messages; a delivery status never moves backwards. */
export function upsertMessages(convId, messages) {
  const t = thread(convId);
  for (const message of messages) {
    const existing = t.byId.get(message.id);
    if (existing && (STATUS_RANK[existing.status] ?? 0) > (STATUS_RANK[message.status] ?? 0)) {
      continue;
    }
    if (!existing) t.ids.push(message.id);
    t.byId.set(message.id, { ...existing, ...message });
  }
  t.ids.sort((a, b) => a - b);
  emit('thread');
}

// Presence pushed live is newer than a users list fetched before it: the list must not undo it.
const PRESENCE_FIELDS = ['online', 'available', 'last_seen_at'];
let presenceClock = 0;
const presenceAt = new Map(); // user id → presenceClock when their presence last came live

/** A mark to pass to `setUsers(users, { fetchedSince })` for a list whose request starts now. */
export function presenceMark() {
  return presenceClock;
}

export function presenceUpdated(users) {
  presenceClock += 1;
  for (const user of users) presenceAt.set(user.id, presenceClock);
  setUsers(users);
}

export function setUsers(users, { fetchedSince = null } = {}) {
  for (const user of users) {
    const held = state.users.get(user.id);
    const merged = { ...held, ...user };
    if (held && fetchedSince !== null && (presenceAt.get(user.id) ?? 0) > fetchedSince) {
      for (const field of PRESENCE_FIELDS) if (field in held) merged[field] = held[field];
    }
    state.users.set(user.id, merged);
    if (state.me && user.id === state.me.id) state.me = { ...state.me, ...merged };
  }
  emit('users', 'me');
}
