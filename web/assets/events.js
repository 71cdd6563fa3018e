// Live events from the websocket, applied to the store.

import {
  loadIntegrations,
  loadList,
  loadSummary,
  markRead,
  openConversation,
  scheduleSummary,
} from './actions.js';
import { showDesktopNotification } from './notify.js';
import { emit, presenceUpdated, removeConv, state, upsertConv, upsertMessages } from './store.js';

export function applyFrame(frame) {
  const data = frame.data || {};
  switch (frame.type) {
    case 'conversation.created':
    case 'conversation.updated':
      upsertConv(data.conversation);
      scheduleSummary();
      break;
    case 'conversation.deleted':
      conversationDeleted(data.conversation_id);
      break;
    case 'message.created':
      messageCreated(data.message, data.conversation);
      break;
    case 'message.updated':
      messageUpdated(data.message);
      break;
    case 'presence.updated':
      presenceUpdated(data.users || []);
      break;
    case 'integration.created':
    case 'integration.updated':
    case 'integration.deleted':
      integrationChanged(frame.type);
      break;
    case 'notification.created':
      notificationCreated(data.notification);
      break;
    case 'note.created':
    case 'note.updated':
      noteChanged(data.note);
      break;
    default:
      break; // events this client does not know yet
  }
}

/** Am I looking at this conversation right now? Then its new messages are read. */
function viewing(convId) {
  return (
    state.openId === convId &&
    state.route.name === 'conversation' &&
    document.visibilityState === 'visible'
  );
}

function messageCreated(message, conversation) {
  const before = state.convs.get(conversation.id);
  const counted = before?.last_message?.id ?? 0;
  const conv = upsertConv(conversation);
  const thread = state.threads.get(conversation.id);
  if (thread && thread.loaded) upsertMessages(conversation.id, [message]);
  if (message.direction === 'inbound' && message.id > counted) {
    if (viewing(conversation.id)) markRead(conversation.id);
    else {
      conv.unread_count = (conv.unread_count || 0) + 1;
      emit('convs', 'list');
    }
  }
  scheduleSummary();
}

function messageUpdated(message) {
  const thread = state.threads.get(message.conversation_id);
  if (thread && thread.byId.has(message.id)) upsertMessages(message.conversation_id, [message]);
  const conv = state.convs.get(message.conversation_id);
  if (conv && conv.last_message && conv.last_message.id === message.id) {
    conv.last_message = { ...conv.last_message, ...message };
    emit('convs', 'list');
  }
}

function conversationDeleted(id) {
  removeConv(id);
  if (state.openId === id) {
    state.openError = { code: 'deleted', message: 'This conversation was deleted.' };
    emit('open');
  }
  scheduleSummary();
}

async function integrationChanged(type) {
  await loadIntegrations().catch(() => {});
  if (type === 'integration.created') return;
  // Who sees what may have changed: refetch the inbox.
  await Promise.allSettled([loadSummary(), loadList(state.section)]);
  if (state.openId != null) openConversation(state.openId);
}

function notificationCreated(notification) {
  if (!notification) return;
  const n = state.notifications;
  if (!n.items.some((item) => item.id === notification.id)) n.items.unshift(notification);
  if (n.available === null) n.available = true;
  emit('notifications');
  // Already looking at that conversation: the bell is enough.
  if (!viewing(notification.conversation_id)) showDesktopNotification(notification);
}

function noteChanged(note) {
  if (!note || note.conversation_id == null) return;
  if (!state.notes.has(note.conversation_id)) state.notes.set(note.conversation_id, new Map());
  state.notes.get(note.conversation_id).set(note.id, note);
  emit('notes');
}
