// Desktop notifications through the browser's Notification API, when the user permitted them.

import { toast } from './views/toast.js';

function desktopSupported() {
  return 'Notification' in window;
}

export function desktopPermission() {
  return desktopSupported() ? Notification.permission : 'unsupported';
}

export async function askDesktopPermission() {
  if (!desktopSupported()) return 'unsupported';
  try {
    return await Notification.requestPermission();
  } catch {
    return Notification.permission;
  }
}

function openConversationLink(notification) {
  if (notification.conversation_id != null) {
    location.hash = `#/conversations/${notification.conversation_id}`;
  }
}

/** The server only sends `notification.created` when my desktop setting for its kind is on. */
export function showDesktopNotification(notification) {
  const title = notification.title || 'Switchboard';
  const body = notification.body || '';
  const away = document.visibilityState !== 'visible' || !document.hasFocus();
  if (away && desktopPermission() === 'granted') {
    try {
      const shown = new Notification(title, { body, tag: `switchboard-${notification.id}` });
      shown.onclick = () => {
        window.focus();
        openConversationLink(notification);
        shown.close();
      };
      return;
    } catch {
      // Some browsers only allow notifications from a service worker: fall back to in-app.
    }
  }
  toast(body ? `${title}: ${body}` : title, {
    action: notification.conversation_id != null ? 'Open' : null,
    onAction: () => openConversationLink(notification),
  });
}
